import { UsageError } from '../../errors';
import { daysBetween, loadHistory, perDay, sparkline } from '../../reporting/history';
import type { Command } from '../command';
import { config, dbOption, jsonOption, pickDatabase } from '../common';
import { formatBytes, formatDuration, printJson, table } from '../output';

export const statsCommand: Command = {
  name: 'stats',
  summary: 'backup statistics over the last days: counts, success rate, sizes, durations, compression, trends',
  usage: 'lifeline stats [--days 7] [--db NAME] [--json]',
  options: { ...dbOption, ...jsonOption, days: { type: 'string' } },
  async run({ values }) {
    const cfg = config();
    const daysWanted = Number((values.days as string | undefined) ?? 7);
    if (!Number.isInteger(daysWanted) || daysWanted < 1 || daysWanted > 3660) throw new UsageError(`--days ${values.days}: a whole number from 1 to 3660`);
    const databases = values.db ? [pickDatabase(cfg, values.db as string).name] : undefined;
    const now = new Date();
    const days = daysBetween(new Date(now.getTime() - (daysWanted - 1) * 86_400_000), now);
    const history = await loadHistory(cfg, databases);
    const rows = perDay(history, days);
    const verified = rows.reduce((n, r) => n + r.verified, 0);
    const failed = rows.reduce((n, r) => n + r.failed, 0);
    const stored = rows.reduce((n, r) => n + r.storedBytes, 0);
    const raw = rows.reduce((n, r) => n + r.rawBytes, 0);
    const withBackups = rows.filter((r) => r.verified);
    const half = Math.floor(withBackups.length / 2);
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
    const trend = (pick: (r: (typeof rows)[number]) => number) => {
      const first = mean(withBackups.slice(0, half).map((r) => pick(r) / r.verified));
      const last = mean(withBackups.slice(half).map((r) => pick(r) / r.verified));
      return first > 0 ? ((last - first) / first) * 100 : 0;
    };
    const summary = {
      days: daysWanted,
      from: days[0],
      to: days.at(-1),
      verified,
      failed,
      successRate: verified + failed ? verified / (verified + failed) : undefined,
      storedBytes: stored,
      averageStoredBytes: verified ? stored / verified : 0,
      compressionRatio: stored ? raw / stored : undefined,
      averageDurationMs: mean(withBackups.map((r) => r.durationMs)),
      trend: { sizePercent: trend((r) => r.storedBytes), durationPercent: trend((r) => r.durationMs * r.verified) },
      perDay: rows,
    };
    if (values.json) {
      printJson(summary);
      return 0;
    }
    process.stdout.write(
      `${summary.from} … ${summary.to}: ${verified} verified, ${failed} failed` +
        (summary.successRate !== undefined ? ` (${(summary.successRate * 100).toFixed(1)}% success)` : '') +
        `\nstored ${formatBytes(stored)}, ${formatBytes(summary.averageStoredBytes)} a backup, compression ${summary.compressionRatio?.toFixed(2) ?? '—'}x, ` +
        `${formatDuration(summary.averageDurationMs)} a backup; trend size ${summary.trend.sizePercent >= 0 ? '+' : ''}${summary.trend.sizePercent.toFixed(1)}%, ` +
        `duration ${summary.trend.durationPercent >= 0 ? '+' : ''}${summary.trend.durationPercent.toFixed(1)}%\n\n` +
        table(
          ['DAY', 'OK', 'FAILED', 'STORED', 'DURATION'],
          rows.map((r) => [r.day, String(r.verified), String(r.failed), r.verified ? formatBytes(r.storedBytes) : '', r.verified ? formatDuration(r.durationMs) : '']),
        ) +
        `\n\nsize     ${sparkline(rows.map((r) => r.storedBytes))}\nduration ${sparkline(rows.map((r) => r.durationMs))}\n`,
    );
    return 0;
  },
};
