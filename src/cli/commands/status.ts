import type { Client } from '@temporalio/client';
import { catalogFor } from '../../backup/repository';
import { errorMessage } from '../../errors';
import { createClient } from '../../temporal/client';
import { backupScheduleId } from '../../temporal/schedules';
import { BACKUP_WORKFLOW_TYPE } from '../../../workflows/definitions';
import type { Command } from '../command';
import { config, jsonOption } from '../common';
import { formatBytes, formatDuration, printJson } from '../output';

const RPO_TARGET_MS = 24 * 3600 * 1000;

interface DatabaseStatus {
  database: string;
  lastVerifiedBackup?: { id: string; takenAt: string; storedBytes: number };
  rpo: { ageMs?: number; targetMs: number; ok: boolean };
  backups: number;
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
  summary: 'per database: last verified backup, RPO against its 24 h target, last and next runs',
  usage: 'lifeline status [--json]',
  options: { ...jsonOption },
  async run({ values }) {
    const cfg = config();
    const client = await createClient(cfg).catch(() => undefined);
    const now = Date.now();
    const statuses: DatabaseStatus[] = [];
    for (const db of cfg.databases) {
      const manifests = await catalogFor(db).list(db.name);
      const last = manifests.at(-1);
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
        rpo: { ageMs, targetMs: RPO_TARGET_MS, ok: ageMs !== undefined && ageMs <= RPO_TARGET_MS },
        backups: manifests.length,
        ...facts,
      });
    }
    if (values.json) {
      printJson(statuses);
    } else {
      for (const s of statuses) {
        const rpo = s.rpo.ageMs === undefined ? 'no verified backup' : `${formatDuration(s.rpo.ageMs)} old (target < 24h)`;
        process.stdout.write(
          `${s.database}  ${s.rpo.ok ? 'OK' : 'AT RISK'}\n` +
            `  last verified backup  ${s.lastVerifiedBackup ? `${s.lastVerifiedBackup.id} (${formatBytes(s.lastVerifiedBackup.storedBytes)})` : '—'}\n` +
            `  RPO                   ${rpo}\n` +
            `  backups in catalog    ${s.backups}\n` +
            `  last run              ${s.lastRun ? `${s.lastRun.status} ${s.lastRun.startedAt} (${s.lastRun.workflowId})` : s.temporal ? `Temporal ${s.temporal}` : '—'}\n` +
            `  next scheduled run    ${s.nextRun ?? '—'}\n`,
        );
      }
    }
    return statuses.every((s) => s.rpo.ok) ? 0 : 1;
  },
};
