import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { auditLogOf } from '../../audit/audit-log';
import { UsageError } from '../../errors';
import { loadHistory } from '../../reporting/history';
import { buildMonthReport, renderHtml, renderMarkdown } from '../../reporting/report';
import { RTO_TARGET_MS } from '../../../workflows/definitions';
import type { Command } from '../command';
import { config, dbOption, pickDatabase } from '../common';

export const reportCommand: Command = {
  name: 'report',
  summary: "the month's compliance report: backups, verifications, replications, restores, approvals, deletions, rotations, RPO/RTO, gaps, audit check",
  usage: 'lifeline report --month YYYY-MM [--format md|html] [--db NAME] [-o FILE]',
  details: `  --month YYYY-MM   the month (UTC)
  --format          md (default) or html (with charts; open it in a browser)
  -o FILE           write to FILE instead of standard output`,
  options: { ...dbOption, month: { type: 'string' }, format: { type: 'string' }, output: { type: 'string', short: 'o' } },
  async run({ values }) {
    const month = values.month as string | undefined;
    if (!month || !/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) throw new UsageError(`--month ${month ?? '(missing)'}: give a month as YYYY-MM, like 2026-11`);
    const format = (values.format as string | undefined) ?? 'md';
    if (format !== 'md' && format !== 'html') throw new UsageError(`--format ${format}: md or html`);
    const cfg = config();
    const databases = values.db ? [pickDatabase(cfg, values.db as string).name] : cfg.databases.map((d) => d.name);
    const history = await loadHistory(cfg, databases);
    const audit = await auditLogOf(cfg).verify();
    const report = buildMonthReport(history, databases, month, audit, { rpoHours: cfg.alerts.rpoHours, rtoMinutes: RTO_TARGET_MS / 60_000 });
    const text = format === 'html' ? renderHtml(report) : renderMarkdown(report);
    if (values.output) {
      writeFileSync(path.resolve(values.output as string), text);
      process.stderr.write(`Wrote ${path.resolve(values.output as string)}\n`);
    } else process.stdout.write(text);
    return audit.ok ? 0 : 1;
  },
};
