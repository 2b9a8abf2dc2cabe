import { auditLogOf, type AuditEntry } from '../audit/audit-log';
import { catalogFor } from '../backup/repository';
import type { Manifest } from '../catalog/manifest';
import type { LifelineConfig } from '../config/config';

/** What stats and reports are made of: the catalogs (verified backups) and the audit trail (everything else). */
export interface History {
  manifests: Manifest[];
  audit: AuditEntry[];
}

export async function loadHistory(config: LifelineConfig, databases?: string[]): Promise<History> {
  const manifests: Manifest[] = [];
  for (const db of config.databases) {
    if (databases?.length && !databases.includes(db.name)) continue;
    manifests.push(...(await catalogFor(db).list(db.name)));
  }
  const audit = (await auditLogOf(config).entries()).filter((e) => !databases?.length || !e.database || databases.includes(e.database));
  return { manifests: manifests.filter((m) => m.type !== 'pre-restore'), audit };
}

export const dayOf = (iso: string) => iso.slice(0, 10);

export function durationMs(m: Manifest): number {
  return Date.parse(m.finishedAt) - Date.parse(m.startedAt) + m.verification.durationMs;
}

/** Every day from `from` to `to` (inclusive, UTC), as YYYY-MM-DD. */
export function daysBetween(from: Date, to: Date): string[] {
  const days: string[] = [];
  for (let t = Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()); t <= to.getTime(); t += 86_400_000) days.push(new Date(t).toISOString().slice(0, 10));
  return days;
}

export interface DayStats {
  day: string;
  verified: number;
  failed: number;
  storedBytes: number;
  rawBytes: number;
  /** Mean of the day's backups, dump to verified. */
  durationMs: number;
}

export function perDay(history: History, days: string[]): DayStats[] {
  return days.map((day) => {
    const ms = history.manifests.filter((m) => dayOf(m.startedAt) === day);
    const failed = history.audit.filter((e) => e.action === 'backup' && e.status === 'failed' && dayOf(e.time) === day).length;
    return {
      day,
      verified: ms.length,
      failed,
      storedBytes: ms.reduce((n, m) => n + m.sizes.storedBytes, 0),
      rawBytes: ms.reduce((n, m) => n + m.sizes.rawBytes, 0),
      durationMs: ms.length ? ms.reduce((n, m) => n + durationMs(m), 0) / ms.length : 0,
    };
  });
}

/** A one-line chart of values: ▁▂▃▄▅▆▇█ (a blank for none). */
export function sparkline(values: number[]): string {
  const bars = '▁▂▃▄▅▆▇█';
  const max = Math.max(...values, 0);
  return values.map((v) => (v <= 0 || max === 0 ? ' ' : bars[Math.min(bars.length - 1, Math.floor((v / max) * (bars.length - 1)))])).join('');
}
