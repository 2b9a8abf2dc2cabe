import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleOptions,
  type ScheduleSpec as TemporalScheduleSpec,
} from '@temporalio/client';
import type { DatabaseConfig, LifelineConfig, ScheduleSpec } from '../config/config';
import {
  BACKUP_WORKFLOW_TYPE,
  BackupDatabase,
  DRILL_WORKFLOW_TYPE,
  KEY_ROTATION_WORKFLOW_TYPE,
  RETENTION_WORKFLOW_TYPE,
  RPO_WATCHDOG_WORKFLOW_TYPE,
  type BackupWorkflowInput,
  type DrillWorkflowInput,
  type KeyRotationWorkflowInput,
  type RetentionWorkflowInput,
} from '../../workflows/definitions';

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

export const KEY_ROTATION_SCHEDULE_ID = 'lifeline-key-rotation';

/** Quarterly: the first day of January, April, July and October, 04:00 UTC (after the daily backup). */
export function keyRotationScheduleOptions(config: LifelineConfig): ScheduleOptions | undefined {
  if (config.keyRotation === 'off') return undefined;
  const input: KeyRotationWorkflowInput = { requestedBy: 'schedule' };
  return {
    scheduleId: KEY_ROTATION_SCHEDULE_ID,
    spec: {
      calendars: [{ month: ['JANUARY', 'APRIL', 'JULY', 'OCTOBER'], dayOfMonth: 1, hour: 4, minute: 0, comment: 'quarterly key rotation' }],
      timezone: 'UTC',
    },
    action: {
      type: 'startWorkflow',
      workflowType: KEY_ROTATION_WORKFLOW_TYPE,
      taskQueue: config.temporal.taskQueue,
      workflowId: KEY_ROTATION_SCHEDULE_ID,
      args: [input],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '7 days', pauseOnFailure: false },
    memo: { lifeline: 'key rotation schedule' },
  };
}

export const RETENTION_SCHEDULE_ID = 'lifeline-retention';

/** The daily cleanup, after the backups (05:00 UTC by default, BACKUP_RETENTION_SCHEDULE). */
export function retentionScheduleOptions(config: LifelineConfig): ScheduleOptions | undefined {
  if (config.retentionSchedule.kind === 'off') return undefined;
  const input: RetentionWorkflowInput = { requestedBy: 'schedule' };
  return {
    scheduleId: RETENTION_SCHEDULE_ID,
    spec: toTemporalSpec(config.retentionSchedule),
    action: { type: 'startWorkflow', workflowType: RETENTION_WORKFLOW_TYPE, taskQueue: config.temporal.taskQueue, workflowId: RETENTION_SCHEDULE_ID, args: [input] },
    // A cleanup still waiting for approval is not doubled by the next day's.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '6 hours', pauseOnFailure: false },
    memo: { lifeline: 'retention schedule' },
  };
}

export const RPO_WATCHDOG_SCHEDULE_ID = 'lifeline-rpo-watchdog';

/** Every hour: the RPO of every database (one alert when breached, one when met again). */
export function rpoWatchdogScheduleOptions(config: LifelineConfig): ScheduleOptions {
  return {
    scheduleId: RPO_WATCHDOG_SCHEDULE_ID,
    spec: { intervals: [{ every: '1 hour', offset: '17 minutes' }] },
    action: { type: 'startWorkflow', workflowType: RPO_WATCHDOG_WORKFLOW_TYPE, taskQueue: config.temporal.taskQueue, workflowId: RPO_WATCHDOG_SCHEDULE_ID, args: [] },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour', pauseOnFailure: false },
    memo: { lifeline: 'RPO watchdog' },
  };
}

export const drillScheduleId = (database: string, kind: 'quarterly' | 'monthly') =>
  kind === 'quarterly' ? `lifeline-drill-${database}` : `lifeline-restore-test-${database}`;

const QUARTER_MONTHS = ['JANUARY', 'APRIL', 'JULY', 'OCTOBER'] as const;
const OTHER_MONTHS = ['FEBRUARY', 'MARCH', 'MAY', 'JUNE', 'AUGUST', 'SEPTEMBER', 'NOVEMBER', 'DECEMBER'] as const;

/**
 * The DR drill on the first Sunday of each quarter at 05:00 UTC, and the monthly restore test (the
 * same workflow) on the first Sunday of the other months: a first Sunday is a Sunday among days 1-7.
 */
export function drillScheduleOptions(config: LifelineConfig, db: DatabaseConfig, kind: 'quarterly' | 'monthly'): ScheduleOptions | undefined {
  if (config.drillSchedule === 'off') return undefined;
  const input: DrillWorkflowInput = { database: db.name, kind, requestedBy: 'schedule' };
  return {
    scheduleId: drillScheduleId(db.name, kind),
    spec: {
      calendars: [{
        month: [...(kind === 'quarterly' ? QUARTER_MONTHS : OTHER_MONTHS)],
        dayOfMonth: { start: 1, end: 7 },
        dayOfWeek: 'SUNDAY',
        hour: 5,
        minute: 0,
        comment: kind === 'quarterly' ? 'DR drill: first Sunday of each quarter, 05:00 UTC' : 'restore test: first Sunday of the other months, 05:00 UTC',
      }],
      timezone: 'UTC',
    },
    action: {
      type: 'startWorkflow',
      workflowType: DRILL_WORKFLOW_TYPE,
      taskQueue: config.temporal.taskQueue,
      workflowId: drillScheduleId(db.name, kind),
      args: [input],
      typedSearchAttributes: [{ key: BackupDatabase, value: db.name }],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day', pauseOnFailure: false },
    memo: { lifeline: `${kind} drill`, database: db.name },
  };
}

/** Creates, updates or deletes one Schedule, idempotently; keeps a paused schedule paused. */
async function applySchedule(client: Client, scheduleId: string, options: ScheduleOptions | undefined): Promise<ScheduleChange> {
  if (!options) {
    try {
      await client.schedule.getHandle(scheduleId).delete();
      return { scheduleId, change: 'deleted' };
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
      return { scheduleId, change: 'absent' };
    }
  }
  try {
    await client.schedule.create(options);
    return { scheduleId, change: 'created' };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((prev) => ({
      ...prev,
      spec: options.spec,
      action: options.action,
      policies: { ...prev.policies, ...options.policies },
    }));
    return { scheduleId, change: 'updated' };
  }
}

/** Per database a backup, a DR drill and a restore test Schedule; and the retention, RPO watchdog and key rotation Schedules. */
export async function applySchedules(client: Client, config: LifelineConfig): Promise<ScheduleChange[]> {
  const changes: ScheduleChange[] = [];
  for (const db of config.databases) {
    changes.push(await applySchedule(client, backupScheduleId(db.name), backupScheduleOptions(config, db)));
    for (const kind of ['quarterly', 'monthly'] as const) changes.push(await applySchedule(client, drillScheduleId(db.name, kind), drillScheduleOptions(config, db, kind)));
  }
  changes.push(await applySchedule(client, RETENTION_SCHEDULE_ID, retentionScheduleOptions(config)));
  changes.push(await applySchedule(client, RPO_WATCHDOG_SCHEDULE_ID, rpoWatchdogScheduleOptions(config)));
  changes.push(await applySchedule(client, KEY_ROTATION_SCHEDULE_ID, keyRotationScheduleOptions(config)));
  return changes;
}
