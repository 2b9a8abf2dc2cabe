import { userInfo } from 'node:os';
import { timestamp } from '../../catalog/naming';
import { errorMessage } from '../../errors';
import { listDrillReports, renderDrillMarkdown } from '../../drill/reports';
import { createClient } from '../../temporal/client';
import { DRILL_WORKFLOW_TYPE, type DrillReport, type DrillWorkflowInput } from '../../../workflows/definitions';
import type { Command } from '../command';
import { config, dbOption, jsonOption, pickDatabase } from '../common';
import { formatDuration, printJson, table } from '../output';
import { resultOf, startWorkflow } from '../start-workflow';

export const drillCommand: Command = {
  name: 'drill',
  summary: 'run a disaster-recovery drill now: newest offsite backup → key → scratch database → checks; RTO and RPO',
  usage: 'lifeline drill [--db NAME] [--wait] [--json]',
  options: { ...dbOption, ...jsonOption, wait: { type: 'boolean' } },
  async run({ values }) {
    const cfg = config();
    const db = pickDatabase(cfg, values.db as string | undefined);
    const input: DrillWorkflowInput = { database: db.name, kind: 'manual', requestedBy: userInfo().username };
    const started = await startWorkflow(await createClient(cfg), cfg, DRILL_WORKFLOW_TYPE, `lifeline-drill-${db.name}-manual-${timestamp(new Date())}`, input, db.name);
    if (!values.wait) {
      if (values.json) printJson({ workflowId: started.workflowId, link: started.link });
      else process.stdout.write(`Started drill of ${db.name}: workflow ${started.workflowId}\n  ${started.link}\n`);
      return 0;
    }
    try {
      const report = await resultOf<DrillReport>(started, 'DrillFailed', 'drill');
      if (values.json) printJson(report);
      else process.stdout.write(renderDrillMarkdown(report));
      return 0;
    } catch (err) {
      // A failed drill still wrote its report: show it.
      const report = (await listDrillReports(cfg, db.name)).find((r) => r.drillId === started.workflowId);
      if (!report) throw err;
      if (values.json) printJson(report);
      else process.stdout.write(renderDrillMarkdown(report));
      process.stderr.write(`${errorMessage(err)}\n`);
      return 1;
    }
  },
};

export const drillsCommand: Command = {
  name: 'drills',
  summary: 'past drills with their results, RTO and RPO (from the reports in the repository)',
  usage: 'lifeline drills [--db NAME] [--json]',
  options: { ...dbOption, ...jsonOption },
  async run({ values }) {
    const cfg = config();
    const reports = await listDrillReports(cfg, values.db ? pickDatabase(cfg, values.db as string).name : undefined);
    if (values.json) {
      printJson(reports);
      return 0;
    }
    if (!reports.length) {
      process.stdout.write('No drills yet. Run one with `lifeline drill --wait`.\n');
      return 0;
    }
    process.stdout.write(
      table(
        ['STARTED (UTC)', 'DATABASE', 'KIND', 'RESULT', 'BACKUP', 'RTO', 'RPO', 'CAUSE'],
        reports.map((r) => [
          r.startedAt.replace('T', ' ').slice(0, 19),
          r.database,
          r.kind,
          r.passed ? 'passed' : 'FAILED',
          r.backup?.backupId ?? '—',
          formatDuration(r.rto.ms),
          r.rpo ? `${(r.rpo.ms / 3_600_000).toFixed(1)}h` : '—',
          (r.failure ?? '').slice(0, 80),
        ]),
      ) + '\n',
    );
    return 0;
  },
};
