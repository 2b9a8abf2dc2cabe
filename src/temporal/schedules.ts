import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleOptions,
  type ScheduleSpec as TemporalScheduleSpec,
} from '@temporalio/client';
import type { DatabaseConfig, LifelineConfig, ScheduleSpec } from '../config/config';
import { BACKUP_WORKFLOW_TYPE, BackupDatabase, type BackupWorkflowInput } from '../../workflows/definitions';

export function backupScheduleId(database: string): string {
  return `lifeline-backup-${database}`;
}

export function toTemporalSpec(spec: Exclude<ScheduleSpec, { kind: 'off' }>): TemporalScheduleSpec {
  if (spec.kind === 'daily') {
    return {
      calendars: [{ hour: spec.hour, minute: spec.minute, comment: `daily ${String(spec.hour).padStart(2, '0')}:${String(spec.minute).padStart(2, '0')} UTC` }],
      timezone: 'UTC',
    };
  }
  return { cronExpressions: [spec.expression], timezone: 'UTC' };
}

/** The daily backup of one database: overlap SKIP (never two dumps of one database at once). */
export function backupScheduleOptions(config: LifelineConfig, db: DatabaseConfig): ScheduleOptions | undefined {
  if (db.schedule.kind === 'off') return undefined;
  const input: BackupWorkflowInput = { database: db.name, type: 'full', trigger: 'schedule' };
  return {
    scheduleId: backupScheduleId(db.name),
    spec: toTemporalSpec(db.schedule),
    action: {
      type: 'startWorkflow',
      workflowType: BACKUP_WORKFLOW_TYPE,
      taskQueue: config.temporal.taskQueue,
      workflowId: `lifeline-backup-${db.name}`,
      args: [input],
      typedSearchAttributes: [{ key: BackupDatabase, value: db.name }],
    },
    // A worker down over 03:00 still backs up when it returns, within 6 hours; later, the next day's run.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '6 hours', pauseOnFailure: false },
    memo: { lifeline: 'backup schedule', database: db.name },
  };
}

export type ScheduleChange = { scheduleId: string; change: 'created' | 'updated' | 'deleted' | 'absent' };

/** Creates or updates one Schedule per database, idempotently; keeps a paused schedule paused. */
export async function applySchedules(client: Client, config: LifelineConfig): Promise<ScheduleChange[]> {
  const changes: ScheduleChange[] = [];
  for (const db of config.databases) {
    const options = backupScheduleOptions(config, db);
    const scheduleId = backupScheduleId(db.name);
    if (!options) {
      try {
        await client.schedule.getHandle(scheduleId).delete();
        changes.push({ scheduleId, change: 'deleted' });
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
        changes.push({ scheduleId, change: 'absent' });
      }
      continue;
    }
    try {
      await client.schedule.create(options);
      changes.push({ scheduleId, change: 'created' });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await client.schedule.getHandle(scheduleId).update((prev) => ({
        ...prev,
        spec: options.spec,
        action: options.action,
        policies: { ...prev.policies, ...options.policies },
      }));
      changes.push({ scheduleId, change: 'updated' });
    }
  }
  return changes;
}
