import { promises as fs } from 'node:fs';
import type { Client } from '@temporalio/client';
import { AuditLog, auditLogFile } from '../audit/audit-log';
import { destinationStorage, localStorageFor, LOCAL } from '../backup/repository';
import type { Manifest } from '../catalog/manifest';
import type { DatabaseConfig, DestinationConfig, LifelineConfig } from '../config/config';
import { listDrillReports } from '../drill/reports';
import { AlertState } from '../notify/alert-state';
import { durationMs } from '../reporting/history';
import type { BackupStorage } from '../storage/storage';
import type { CatalogView, Listed } from './catalog-view';

/** Every metric a collector may set, with its labels (README, "Metrics", lists them all). */
export const METRICS = {
  lifeline_last_verified_backup_age_seconds: { type: 'gauge', labels: ['database', 'destination'], help: 'Seconds since the snapshot of the newest verified, authentic backup was taken (destination "local": the repository; otherwise the copy in that destination). Pre-restore snapshots do not count.' },
  lifeline_last_verified_backup_timestamp_seconds: { type: 'gauge', labels: ['database', 'destination'], help: 'Unix time the snapshot of the newest verified, authentic backup was taken, per place it is kept.' },
  lifeline_verified_backups: { type: 'gauge', labels: ['database', 'destination'], help: 'Verified backups catalogued in the place (manifests that parse; authenticity is checked for the newest only).' },
  lifeline_last_backup_duration_seconds: { type: 'gauge', labels: ['database'], help: 'Dump plus verification time of the newest verified backup in the repository.' },
  lifeline_last_backup_stored_bytes: { type: 'gauge', labels: ['database'], help: 'Stored (compressed, encrypted) size of the newest verified backup in the repository, all parts together.' },
  lifeline_rpo_target_seconds: { type: 'gauge', labels: ['database'], help: 'The RPO target (BACKUP_RPO_HOURS): a verified backup should never be older than this.' },
  lifeline_replication_lag_seconds: { type: 'gauge', labels: ['database', 'destination'], help: 'Seconds since the oldest verified backup the destination lacks was verified (among those newer than its newest copy); 0 when it holds the newest backup.' },
  lifeline_failures_total: { type: 'counter', labels: ['database', 'kind'], help: 'Failed operations recorded in the audit trail, by kind (backup, drill, …); read from the trail at scrape time, so every worker reports the same total and it survives restarts.' },
  lifeline_drill_last_passed: { type: 'gauge', labels: ['database'], help: '1 if the newest disaster-recovery drill passed, 0 if it failed.' },
  lifeline_drill_last_timestamp_seconds: { type: 'gauge', labels: ['database'], help: 'Unix time the newest drill finished.' },
  lifeline_drill_last_rto_seconds: { type: 'gauge', labels: ['database'], help: 'Recovery time the newest drill achieved (start to verified database).' },
  lifeline_drill_last_rpo_seconds: { type: 'gauge', labels: ['database'], help: "Recovery point of the newest drill: the age of the backup's snapshot when the drill started." },
  lifeline_drill_rto_target_seconds: { type: 'gauge', labels: ['database'], help: 'The RTO target the newest drill was measured against.' },
  lifeline_alerts_open: { type: 'gauge', labels: ['kind', 'severity'], help: 'Lasting alert conditions open in the repository (alerts/open.json), by kind (rpo, space, …) and severity.' },
  lifeline_restores_waiting_approval: { type: 'gauge', labels: ['database'], help: 'Running restore workflows waiting for an approval (search attribute RestoreState = WAITING_APPROVAL).' },
} as const;

export type MetricName = keyof typeof METRICS;
export type Labels = Record<string, string>;

export interface Sample {
  name: MetricName;
  labels: Labels;
  value: number;
}

/** What one scrape shares between its collectors. */
export interface ScrapeContext {
  now: number;
  config: LifelineConfig;
  view: CatalogView;
  /** The local repository's listing of a database, read once per scrape. */
  local(db: DatabaseConfig): Promise<Listed[]>;
}

/**
 * One source of metrics. Collectors run side by side; one that fails or is slow leaves the others'
 * metrics in the scrape and shows as lifeline_collector_up 0 with its labels.
 */
export interface Collector {
  collector: string;
  labels: Labels;
  /** Results reused for this long (remote listings: a scrape every 15 s need not list an S3 bucket every 15 s). */
  ttlMs?: number;
  collect(ctx: ScrapeContext): Promise<Sample[]>;
}

const seconds = (ms: number) => ms / 1000;
const notPreRestore = (m: Manifest) => m.type !== 'pre-restore';

function freshness(database: string, destination: string, newest: Manifest | undefined, count: number, now: number): Sample[] {
  const labels = { database, destination };
  const samples: Sample[] = [{ name: 'lifeline_verified_backups', labels, value: count }];
  if (newest) {
    const taken = Date.parse(newest.startedAt);
    samples.push({ name: 'lifeline_last_verified_backup_timestamp_seconds', labels, value: seconds(taken) });
    samples.push({ name: 'lifeline_last_verified_backup_age_seconds', labels, value: Math.max(0, seconds(now - taken)) });
  }
  return samples;
}

/** The repository of one database: freshness, and the newest backup's duration and size. */
export function catalogCollector(db: DatabaseConfig): Collector {
  return {
    collector: 'catalog',
    labels: { database: db.name },
    async collect(ctx) {
      const storage = localStorageFor(db);
      const listed = await ctx.local(db);
      const newest = await ctx.view.newestTrusted(storage, listed, notPreRestore);
      const samples = freshness(db.name, LOCAL, newest, listed.length, ctx.now);
      if (newest) {
        samples.push({ name: 'lifeline_last_backup_duration_seconds', labels: { database: db.name }, value: seconds(durationMs(newest)) });
        samples.push({ name: 'lifeline_last_backup_stored_bytes', labels: { database: db.name }, value: newest.sizes.storedBytes });
      }
      return samples;
    },
  };
}

/**
 * A replication destination of one database: the freshness of its copies, and how far it is behind the
 * repository. Lag counts from when the backup it lacks was verified (replication starts right after), so a
 * copy in progress shows seconds, a destination that has been unreachable since last night shows hours.
 */
export function destinationCollector(db: DatabaseConfig, destination: DestinationConfig, ttlMs: number): Collector {
  let storage: BackupStorage | undefined;
  return {
    collector: 'destination',
    labels: { database: db.name, destination: destination.name },
    ttlMs,
    async collect(ctx) {
      storage ??= destinationStorage(destination);
      const [copies, local] = await Promise.all([ctx.view.list(storage, db.name), ctx.local(db)]);
      const newest = await ctx.view.newestTrusted(storage, copies, notPreRestore);
      const samples = freshness(db.name, destination.name, newest, copies.length, ctx.now);
      const held = new Set(copies.map((c) => c.manifest.id));
      const newestHeld = copies.at(-1)?.manifest.startedAt ?? '';
      const lacking = local.map((l) => l.manifest).filter((m) => notPreRestore(m) && !held.has(m.id) && m.startedAt > newestHeld);
      const oldestLacking = lacking[0];
      const lag = oldestLacking ? Math.max(0, seconds(ctx.now - Date.parse(oldestLacking.verification.verifiedAt))) : 0;
      samples.push({ name: 'lifeline_replication_lag_seconds', labels: { database: db.name, destination: destination.name }, value: lag });
      return samples;
    },
  };
}

/** The newest drill report of each database (`<BACKUP_DIR>/drills/<db>/*.json`). */
export function drillCollector(): Collector {
  return {
    collector: 'drills',
    labels: {},
    async collect(ctx) {
      const newest = new Map<string, Awaited<ReturnType<typeof listDrillReports>>[number]>();
      for (const report of await listDrillReports(ctx.config)) newest.set(report.database, report);
      return [...newest.values()].flatMap((r): Sample[] => {
        const labels = { database: r.database };
        return [
          { name: 'lifeline_drill_last_passed', labels, value: r.passed ? 1 : 0 },
          { name: 'lifeline_drill_last_timestamp_seconds', labels, value: seconds(Date.parse(r.finishedAt)) },
          { name: 'lifeline_drill_last_rto_seconds', labels, value: seconds(r.rto.ms) },
          { name: 'lifeline_drill_rto_target_seconds', labels, value: seconds(r.rto.targetMs) },
          ...(r.rpo ? [{ name: 'lifeline_drill_last_rpo_seconds' as const, labels, value: seconds(r.rpo.ms) }] : []),
        ];
      });
    },
  };
}

/** Kinds every configured database reports, 0 until the first failure, so `increase()` sees the first one. */
export const FAILURE_KINDS = ['backup', 'drill'] as const;

/**
 * Failures by kind, counted from the audit trail (`<BACKUP_DIR>/audit/audit.jsonl`) at scrape time.
 * Why there and not in a counter of this process: the trail is where every worker records a failed
 * backup (the workflow's `backup.failed` entry, status failed) and a failed drill (status failed), so the
 * count is the same whichever worker ran the step, survives worker restarts and deploys (a process
 * counter would start again at 0 and miss failures handled by another worker), and cannot count one
 * failure twice when a step is retried (entries are idempotent by event id). Any other action the trail
 * records with status "failed" appears under its own kind. The file is re-read only when it changed.
 */
export function auditFailuresCollector(): Collector {
  let cache: { stamp: string; counts: Map<string, number> } | undefined;
  return {
    collector: 'audit',
    labels: {},
    async collect(ctx) {
      const file = auditLogFile(ctx.config.backupDir);
      const known = new Set(ctx.config.databases.map((d) => d.name));
      const stat = await fs.stat(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      const stamp = stat ? `${stat.ino}:${stat.size}:${stat.mtimeMs}` : 'none';
      if (cache?.stamp !== stamp) {
        const counts = new Map<string, number>();
        for (const entry of stat ? await new AuditLog(file).entries() : []) {
          if (entry.status !== 'failed' || !entry.database || !known.has(entry.database)) continue;
          const kind = entry.action.replace(/[^a-zA-Z0-9_]/g, '_');
          const key = `${entry.database}\u0000${kind}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        cache = { stamp, counts };
      }
      for (const database of known) for (const kind of FAILURE_KINDS) if (!cache.counts.has(`${database}\u0000${kind}`)) cache.counts.set(`${database}\u0000${kind}`, 0);
      return [...cache.counts.entries()].map(([key, value]) => {
        const [database, kind] = key.split('\u0000') as [string, string];
        return { name: 'lifeline_failures_total', labels: { database, kind }, value };
      });
    },
  };
}

/** Open lasting conditions (alerts/open.json): counted by the kind their key starts with, never the key itself (it may hold a path). */
export function alertStateCollector(): Collector {
  return {
    collector: 'alerts',
    labels: {},
    async collect(ctx) {
      const counts = new Map<string, number>();
      for (const alert of await new AlertState(ctx.config.backupDir).list()) {
        const kind = (/^[a-z][a-z0-9-]*/.exec(alert.key)?.[0] ?? 'other').replace(/-/g, '_');
        const severity = ['critical', 'warning', 'info'].includes(alert.severity) ? alert.severity : 'other';
        counts.set(`${kind}\u0000${severity}`, (counts.get(`${kind}\u0000${severity}`) ?? 0) + 1);
      }
      return [...counts.entries()].map(([key, value]) => {
        const [kind, severity] = key.split('\u0000') as [string, string];
        return { name: 'lifeline_alerts_open', labels: { kind, severity }, value };
      });
    },
  };
}

/**
 * Restores waiting for an approval, from Temporal's visibility: running restore workflows whose
 * RestoreState search attribute is WAITING_APPROVAL (a terminated one keeps its last state: hence Running).
 */
export function restoresWaitingCollector(client: () => Promise<Client>): Collector {
  return {
    collector: 'temporal',
    labels: {},
    async collect(ctx) {
      const c = await client();
      return Promise.all(
        ctx.config.databases.map(async (db): Promise<Sample> => {
          // Database names match DATABASE_NAME_PATTERN: nothing in them needs quoting beyond the quotes.
          const query = `RestoreState = 'WAITING_APPROVAL' AND BackupDatabase = '${db.name}' AND ExecutionStatus = 'Running'`;
          const { count } = await c.workflow.count(query);
          return { name: 'lifeline_restores_waiting_approval', labels: { database: db.name }, value: count };
        }),
      );
    },
  };
}
