import type { Client } from '@temporalio/client';
import { catalogFor } from '../../backup/repository';
import { keyringFor } from '../../crypto/keys';
import { newestAuthentic } from '../../catalog/catalog';
import { listDrillReports } from '../../drill/reports';
import { AlertState } from '../../notify/alert-state';
import { errorMessage } from '../../errors';
import { createClient } from '../../temporal/client';
import { backupScheduleId } from '../../temporal/schedules';
import { BACKUP_WORKFLOW_TYPE } from '../../../workflows/definitions';
import type { Command } from '../command';
import { config, jsonOption } from '../common';
import { formatBytes, formatDuration, printJson } from '../output';

interface DatabaseStatus {
  database: string;
  lastVerifiedBackup?: { id: string; takenAt: string; storedBytes: number };
  rpo: { ageMs?: number; targetMs: number; ok: boolean };
  backups: number;
  lastDrill?: { drillId: string; passed: boolean; startedAt: string; rtoMs: number; failure?: string };
  /** Alerts about lasting conditions that are open now (RPO, space). */
  openAlerts: Array<{ key: string; severity: string; title: string; since: string }>;
  lastRun?: { workflowId: string; status: string; startedAt: string };
  nextRun?: string;
  temporal?: string;
}

async function temporalFacts(client: Client | undefined, database: string): Promise<Pick<DatabaseStatus, 'lastRun' | 'nextRun' | 'temporal'>> {
  if (!client) return { temporal: 'unreachable' };
  const facts: Pick<DatabaseStatus, 'lastRun' | 'nextRun' | 'temporal'> = {};
  try {
    const d = await client.schedule.getHandle(backupScheduleId(database)).describe();
    facts.nextRun = d.info.nextActionTimes[0]?.toISOString();
  } catch {
    facts.nextRun = undefined;
  }
  for await (const w of client.workflow.list({ query: `WorkflowType = '${BACKUP_WORKFLOW_TYPE}' AND BackupDatabase = '${database}'`, pageSize: 1 })) {
    facts.lastRun = { workflowId: w.workflowId, status: w.status.name, startedAt: w.startTime.toISOString() };
    break;
  }
  return facts;
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'per database: last run and its result, last verified backup, RPO against its target, next run, last drill, open alerts',
  usage: 'lifeline status [--json]',
  options: { ...jsonOption },
  async run({ values }) {
    const cfg = config();
    const client = await createClient(cfg).catch((err: unknown) => {
      // The catalog's facts are still shown; say once why Temporal's are not (a TLS refusal says what to check).
      process.stderr.write(`Temporal: ${errorMessage(err)}\n`);
      return undefined;
    });
    const now = Date.now();
    const statuses: DatabaseStatus[] = [];
    const alerts = await new AlertState(cfg.backupDir).list();
    for (const db of cfg.databases) {
      const manifests = await catalogFor(db).list(db.name);
      const lastDrill = (await listDrillReports(cfg, db.name)).at(-1);
      // Pre-restore snapshots are not the schedule's backups: they do not count toward the RPO.
      // Only an authentic manifest counts (see rpoCheck).
      const last = await newestAuthentic(catalogFor(db).storage, manifests.filter((m) => m.type !== 'pre-restore'), keyringFor(cfg));
      const ageMs = last ? now - Date.parse(last.startedAt) : undefined;
      let facts: Pick<DatabaseStatus, 'lastRun' | 'nextRun' | 'temporal'>;
      try {
        facts = await temporalFacts(client, db.name);
      } catch (err) {
        facts = { temporal: errorMessage(err) };
      }
      statuses.push({
        database: db.name,
        lastVerifiedBackup: last && { id: last.id, takenAt: last.startedAt, storedBytes: last.sizes.storedBytes },
        rpo: { ageMs, targetMs: cfg.alerts.rpoHours * 3_600_000, ok: ageMs !== undefined && ageMs <= cfg.alerts.rpoHours * 3_600_000 },
        backups: manifests.length,
        lastDrill: lastDrill && { drillId: lastDrill.drillId, passed: lastDrill.passed, startedAt: lastDrill.startedAt, rtoMs: lastDrill.rto.ms, failure: lastDrill.failure },
        openAlerts: alerts
          .filter((a) => a.key.endsWith(`:${db.name}`) || a.key === `space:${db.backupDir}`)
          .map((a) => ({ key: a.key, severity: a.severity, title: a.title, since: a.openedAt })),
        ...facts,
      });
    }
    if (values.json) {
      printJson(statuses);
    } else {
      for (const s of statuses) {
        const rpo = s.rpo.ageMs === undefined ? 'no verified backup' : `${formatDuration(s.rpo.ageMs)} old (target < ${formatDuration(s.rpo.targetMs)})`;
        process.stdout.write(
          `${s.database}  ${s.rpo.ok ? 'OK' : 'AT RISK'}\n` +
            `  last verified backup  ${s.lastVerifiedBackup ? `${s.lastVerifiedBackup.id} (${formatBytes(s.lastVerifiedBackup.storedBytes)})` : '—'}\n` +
            `  RPO                   ${rpo}\n` +
            `  backups in catalog    ${s.backups}\n` +
            `  last run              ${s.lastRun ? `${s.lastRun.status} ${s.lastRun.startedAt} (${s.lastRun.workflowId})` : s.temporal ? `Temporal ${s.temporal}` : '—'}\n` +
            `  next scheduled run    ${s.nextRun ?? '—'}\n` +
            `  last drill            ${s.lastDrill ? `${s.lastDrill.passed ? 'passed' : 'FAILED'} ${s.lastDrill.startedAt}, RTO ${formatDuration(s.lastDrill.rtoMs)}${s.lastDrill.failure ? ` (${s.lastDrill.failure.slice(0, 100)})` : ''}` : '—'}\n` +
            `  open alerts           ${s.openAlerts.length ? s.openAlerts.map((a) => `${a.severity.toUpperCase()} ${a.title} (since ${a.since})`).join('\n                        ') : 'none'}\n`,
        );
      }
    }
    return statuses.every((s) => s.rpo.ok) ? 0 : 1;
  },
};
