import type { AuditEntry, ChainCheck } from '../audit/audit-log';
import { daysBetween, dayOf, perDay, type DayStats, type History } from './history';

/** The month's compliance report: what happened, against the targets, with the gaps and the audit check. */
export interface MonthReport {
  month: string;
  generatedAt: string;
  targets: { rpoHours: number; rtoMinutes: number };
  backups: Array<{ id: string; database: string; takenAt: string; storedBytes: number; sha256: string }>;
  failedBackups: AuditEntry[];
  verifications: AuditEntry[];
  replications: AuditEntry[];
  restores: AuditEntry[];
  decisions: AuditEntry[];
  deletions: AuditEntry[];
  keyRotations: AuditEntry[];
  drills: AuditEntry[];
  /** Longest time between consecutive verified backups of a database in the month (the RPO achieved). */
  rpo: Array<{ database: string; worstGapHours: number; met: boolean }>;
  rto: Array<{ backupId?: string; minutes: number; met: boolean }>;
  /** Days of the month (up to today) without a verified backup. */
  gaps: Array<{ database: string; day: string }>;
  perDay: DayStats[];
  audit: ChainCheck;
}

export function buildMonthReport(history: History, databases: string[], month: string, audit: ChainCheck, targets: MonthReport['targets'], now = new Date()): MonthReport {
  const inMonth = (iso: string) => iso.startsWith(month);
  const entries = history.audit.filter((e) => inMonth(e.time));
  const of = (action: string | RegExp) => entries.filter((e) => (typeof action === 'string' ? e.action === action : action.test(e.action)));
  const [year, mon] = month.split('-').map(Number) as [number, number];
  const first = new Date(Date.UTC(year, mon - 1, 1));
  const last = new Date(Math.min(Date.UTC(year, mon, 0), now.getTime()));
  const days = first <= last ? daysBetween(first, last) : [];
  const backups = history.manifests.filter((m) => inMonth(m.startedAt));

  const rpo = databases.map((database) => {
    const times = history.manifests.filter((m) => m.database === database).map((m) => Date.parse(m.startedAt)).sort((a, b) => a - b);
    const windowStart = first.getTime();
    const windowEnd = last.getTime() + 86_400_000;
    let worst = 0;
    // Before the month's first backup, the gap runs from the one before it, or from the month's start.
    let previous = times.filter((t) => t < windowStart).at(-1) ?? windowStart;
    for (const t of times.filter((t) => t >= windowStart && t < windowEnd)) {
      worst = Math.max(worst, t - previous);
      previous = t;
    }
    worst = Math.max(worst, Math.min(windowEnd, now.getTime()) - previous);
    return { database, worstGapHours: worst / 3_600_000, met: worst <= targets.rpoHours * 3_600_000 };
  });
  const restores = of('restore');
  return {
    month,
    generatedAt: now.toISOString(),
    targets,
    backups: backups.map((m) => ({ id: m.id, database: m.database, takenAt: m.startedAt, storedBytes: m.sizes.storedBytes, sha256: m.sha256 })),
    failedBackups: of('backup').filter((e) => e.status === 'failed'),
    verifications: of('verification'),
    replications: of('replication'),
    restores,
    decisions: of(/^restore\.(approved|cancelled|forced|timed-out)$/),
    deletions: of('deletion'),
    keyRotations: of('key.rotation'),
    drills: of('drill'),
    rpo,
    rto: restores
      .filter((e) => typeof e.details?.rtoMs === 'number')
      .map((e) => ({ backupId: e.backupId, minutes: (e.details!.rtoMs as number) / 60_000, met: (e.details!.rtoMs as number) <= targets.rtoMinutes * 60_000 })),
    gaps: databases.flatMap((database) =>
      days.filter((day) => !history.manifests.some((m) => m.database === database && dayOf(m.startedAt) === day)).map((day) => ({ database, day })),
    ),
    perDay: perDay(history, days),
    audit,
  };
}

const row = (cells: Array<string | number | undefined>) => `| ${cells.map((c) => String(c ?? '').replace(/\|/g, '\\|')).join(' | ')} |`;

function section(title: string, headers: string[], rows: Array<Array<string | number | undefined>>): string {
  return `## ${title}\n\n` + (rows.length ? [row(headers), row(headers.map(() => '---')), ...rows.map(row)].join('\n') : '_None._') + '\n\n';
}

const events = (list: AuditEntry[]) => list.map((e) => [e.time.replace('T', ' ').slice(0, 19), e.actor, e.database, e.backupId, e.status, e.details ? JSON.stringify(e.details) : '']);

export function renderMarkdown(r: MonthReport): string {
  return (
    `# Lifeline compliance report, ${r.month}\n\nGenerated ${r.generatedAt}. Targets: RPO < ${r.targets.rpoHours} h, RTO < ${r.targets.rtoMinutes} min.\n\n` +
    `**Audit trail:** ${r.audit.ok ? `intact, ${r.audit.entries} entries, chain verified` : `BROKEN at line ${r.audit.broken?.line}: ${r.audit.broken?.reason}`}.\n\n` +
    `**Summary:** ${r.backups.length} verified backups, ${r.failedBackups.length} failed, ${r.replications.length} replications, ${r.restores.length} restores, ` +
    `${r.deletions.length} deletions, ${r.keyRotations.length} key rotations, ${r.drills.length} drills, ${r.gaps.length} days without a verified backup.\n\n` +
    section('RPO achieved', ['database', 'longest gap (h)', 'met'], r.rpo.map((x) => [x.database, x.worstGapHours.toFixed(1), x.met ? 'yes' : 'NO'])) +
    section('RTO achieved (restores)', ['backup', 'minutes', 'met'], r.rto.map((x) => [x.backupId, x.minutes.toFixed(1), x.met ? 'yes' : 'NO'])) +
    section('Gaps: days without a verified backup', ['database', 'day'], r.gaps.map((g) => [g.database, g.day])) +
    section('Backups', ['id', 'database', 'taken (UTC)', 'stored bytes', 'sha256'], r.backups.map((b) => [b.id, b.database, b.takenAt.replace('T', ' ').slice(0, 19), b.storedBytes, b.sha256.slice(0, 16) + '…'])) +
    section('Failed backups', ['time', 'actor', 'database', 'backup', 'status', 'details'], events(r.failedBackups)) +
    section('Verifications', ['time', 'actor', 'database', 'backup', 'status', 'details'], events(r.verifications)) +
    section('Replications', ['time', 'actor', 'database', 'backup', 'status', 'details'], events(r.replications)) +
    section('Restores', ['time', 'actor', 'database', 'backup', 'status', 'details'], events(r.restores)) +
    section('Approvals and cancellations', ['time', 'by', 'database', 'backup', 'decision', 'details'], events(r.decisions)) +
    section('Deletions (with their rule)', ['time', 'actor', 'database', 'backup', 'status', 'details'], events(r.deletions)) +
    section('Key rotations', ['time', 'actor', 'database', 'backup', 'status', 'details'], events(r.keyRotations)) +
    section('Drills', ['time', 'actor', 'database', 'backup', 'status', 'details'], events(r.drills))
  );
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** An inline SVG bar chart: one bar per day. */
function barChart(title: string, days: DayStats[], value: (d: DayStats) => number, label: (v: number) => string, colour: (d: DayStats) => string): string {
  const width = Math.max(320, days.length * 18);
  const max = Math.max(...days.map(value), 1);
  const bars = days
    .map((d, i) => {
      const h = (value(d) / max) * 120;
      return `<rect x="${i * 18 + 2}" y="${130 - h}" width="14" height="${h}" fill="${colour(d)}"><title>${d.day}: ${escapeHtml(label(value(d)))}</title></rect>`;
    })
    .join('');
  return `<figure><figcaption>${escapeHtml(title)}</figcaption><svg width="${width}" height="140" role="img" aria-label="${escapeHtml(title)}"><line x1="0" y1="130" x2="${width}" y2="130" stroke="#999"/>${bars}</svg></figure>`;
}

export function renderHtml(r: MonthReport): string {
  // The Markdown tables, as HTML tables; charts above them.
  const md = renderMarkdown(r);
  const body = md
    .split('\n\n')
    .map((block) => {
      if (block.startsWith('# ')) return `<h1>${escapeHtml(block.slice(2))}</h1>`;
      if (block.startsWith('## ')) return `<h2>${escapeHtml(block.slice(3))}</h2>`;
      if (block.startsWith('| ')) {
        const lines = block.split('\n').filter((l) => !/^\| (---( \| )?)+/.test(l));
        const cells = (l: string) => l.slice(2, -2).split(' | ');
        const [head, ...rest] = lines;
        return `<table><thead><tr>${cells(head!).map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr></thead><tbody>${rest.map((l) => `<tr>${cells(l).map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
      }
      return block.trim() ? `<p>${escapeHtml(block).replace(/\*\*(.+?)\*\*/g, '<strong>$1</strong>').replace(/_(.+?)_/g, '<em>$1</em>')}</p>` : '';
    })
    .join('\n');
  const charts =
    barChart('Stored bytes per day', r.perDay, (d) => d.storedBytes, (v) => `${(v / 1048576).toFixed(1)} MiB`, (d) => (d.failed ? '#c0392b' : '#2e86c1')) +
    barChart('Mean backup duration per day (s)', r.perDay, (d) => d.durationMs / 1000, (v) => `${v.toFixed(1)} s`, () => '#7d3c98') +
    barChart('Verified backups per day (red: a day with a failure or none)', r.perDay, (d) => d.verified, (v) => String(v), (d) => (d.failed || !d.verified ? '#c0392b' : '#27ae60'));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lifeline compliance report ${escapeHtml(r.month)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f4f6f7}figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}</style>
</head><body>
${body.replace(/(<h2>RPO achieved<\/h2>)/, `<section>${charts}</section>$1`)}
</body></html>
`;
}
