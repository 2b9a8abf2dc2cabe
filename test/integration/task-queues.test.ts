/**
 * Long steps cannot starve short ones: a worker polls two task queues, `<q>` (workflows, short steps) and
 * `<q>-long` (dumps, verifications, restores, transfers), each with its own slots. Here two dumps held by
 * table locks fill the long slots (LIFELINE_LONG_STEP_SLOTS = BACKUP_PARALLEL_JOBS = 2) and the RPO
 * watchdog's check, a short step, still runs and completes while both wait. With one queue (before the
 * split) the watchdog waited for a dump to finish: its check had no slot.
 */
import { Client, type WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { waitFor } from '../../src/infra/net';
import { logger } from '../../src/logger';
import { connectTemporal } from '../../src/temporal/client';
import { dataConverterFor } from '../../src/temporal/data-converter';
import {
  BACKUP_WORKFLOW_TYPE,
  BackupDatabase,
  RPO_WATCHDOG_WORKFLOW_TYPE,
  type BackupWorkflowResult,
} from '../../workflows/definitions';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker } from '../harness/worker';
import { lockTable } from '../harness/locks';

const DATABASES = ['it_tq_one', 'it_tq_two'];

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;


/** Sessions of these databases waiting for a lock (asked on a connection of its own). */
async function lockWaiters(servers: TestServers, databases: string[]): Promise<string[]> {
  const rows = await servers.cluster.sql<{ datname: string }>(
    `SELECT DISTINCT datname FROM pg_stat_activity WHERE datname IN (${databases.map((d) => `'${d}'`).join(', ')}) AND wait_event_type = 'Lock'`,
  );
  return rows.map((r) => r.datname).sort();
}

/** The events of an activity type: when it was scheduled (and on which queue), started and completed. */
function activityEvents(events: HistoryEvent[], type: string): { queue: string; scheduled: number; completed?: number } {
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type);
  assert.ok(scheduled, `${type} was scheduled`);
  const completed = events.find((e) => e.activityTaskCompletedEventAttributes && String(e.activityTaskCompletedEventAttributes.scheduledEventId) === String(scheduled.eventId));
  return {
    queue: scheduled.activityTaskScheduledEventAttributes!.taskQueue!.name!,
    scheduled: tsToMs(scheduled.eventTime),
    completed: completed ? tsToMs(completed.eventTime) : undefined,
  };
}

/** Who polls a task queue for activities and for workflow tasks (identities). */
async function pollers(client: Client, namespace: string, name: string): Promise<{ activity: string[]; workflow: string[] }> {
  const ask = async (taskQueueType: temporal.api.enums.v1.TaskQueueType) => {
    const answer = await client.workflowService.describeTaskQueue({
      namespace,
      taskQueue: { name, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType,
    });
    return (answer.pollers ?? []).map((p) => p.identity ?? '');
  };
  return {
    activity: await ask(temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    workflow: await ask(temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
  };
}

describe('long and short steps on their own task queues', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: (() => Promise<void>) | undefined;
  const lockers: pg.Client[] = [];
  /** What the worker logged at warn (the SDK's logs go through our logger). */
  const warnings: string[] = [];

  before(async () => {
    servers = await testServers();
    const databases = [];
    for (const name of DATABASES) databases.push({ name, url: (await seededDatabase(servers, name, { users: 10, transactions: 50 })).url });
    // Two job slots: two long steps at once, as many short ones as max(4, 2 × 2). A dump waiting on a lock
    // waits (10 min), it does not fail at BACKUP_LOCK_WAIT_TIMEOUT's default 2 min.
    setup = await testConfig(servers, 'taskqueues', databases, { env: { BACKUP_PARALLEL_JOBS: '2', BACKUP_LOCK_WAIT_TIMEOUT: '10m' } });
    assert.equal(setup.config.temporal.longTaskQueue, `${setup.config.temporal.taskQueue}-long`);
    assert.deepEqual(setup.config.temporal.slots, { long: 2, short: 4 });
    client = new Client({ connection: await connectTemporal(servers.temporalAddress), dataConverter: dataConverterFor(setup.config) });
    const warn = logger.warn.bind(logger);
    logger.warn = ((...args: unknown[]) => {
      warnings.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
      return (warn as (...a: unknown[]) => void)(...args);
    }) as typeof logger.warn;
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    for (const locker of lockers) await locker.end().catch(() => undefined);
    await stopWorker?.();
    await client?.connection.close();
  });

  it('the worker polls the main queue for workflows and short steps, and the long queue for long steps only', async () => {
    const { namespace, taskQueue, longTaskQueue } = setup.config.temporal;
    let seen: { main: Awaited<ReturnType<typeof pollers>>; long: Awaited<ReturnType<typeof pollers>> } | undefined;
    await waitFor(
      'pollers on both task queues',
      async () => {
        seen = { main: await pollers(client, namespace, taskQueue), long: await pollers(client, namespace, longTaskQueue) };
        return seen.main.activity.length > 0 && seen.main.workflow.length > 0 && seen.long.activity.length > 0;
      },
      30_000,
    );
    assert.ok(seen);
    // One process polls both (the same identity), and nothing asks the long queue for workflow tasks.
    assert.deepEqual(seen.long.activity, seen.main.activity);
    assert.deepEqual(seen.long.workflow, []);
    // That the long queue's Worker has no workflows is by design: no warning at every start.
    assert.deepEqual(warnings.filter((w) => w.includes('No workflows registered')), []);
  });

  it('two dumps filling the long slots do not delay the RPO watchdog', { timeout: 240_000 }, async () => {
    const { taskQueue, longTaskQueue } = setup.config.temporal;
    for (const name of DATABASES) lockers.push(await lockTable(servers.cluster.adminUrl(name), 'public.users'));

    const backups: WorkflowHandle[] = [];
    for (const database of DATABASES) {
      backups.push(
        await client.workflow.start(BACKUP_WORKFLOW_TYPE, {
          taskQueue,
          workflowId: `it-tq-backup-${database}-${Date.now()}`,
          args: [{ database }],
          typedSearchAttributes: [{ key: BackupDatabase, value: database }],
        }),
      );
    }
    // Both dumps are under way, each with a session waiting on its table's lock: both long slots are taken.
    await waitFor('both dumps to wait on their locks', async () => (await lockWaiters(servers, DATABASES)).length === DATABASES.length, 90_000);

    const watchdog = await client.workflow.start(RPO_WATCHDOG_WORKFLOW_TYPE, { taskQueue, workflowId: `it-tq-rpo-${Date.now()}`, args: [] });
    // With one queue this waits until a dump is let go, which happens only below: it would time out here.
    const result = watchdog.result() as Promise<Array<{ database: string }>>;
    result.catch(() => undefined); // still waiting when the test fails and the client closes
    let timer: NodeJS.Timeout | undefined;
    const checks = await Promise.race([
      result,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the RPO watchdog did not complete while the dumps held the long slots')), 60_000))),
    ]).finally(() => clearTimeout(timer));
    assert.deepEqual(checks.map((c) => c.database).sort(), DATABASES);
    // The dumps are still held: the watchdog did not get its slot from a dump that ended.
    assert.deepEqual(await lockWaiters(servers, DATABASES), DATABASES);

    for (const locker of lockers.splice(0)) {
      await locker.query('COMMIT');
      await locker.end();
    }
    const results = (await Promise.all(backups.map((b) => b.result()))) as BackupWorkflowResult[];
    assert.equal(results.length, 2);

    // What Temporal recorded: the short step completed before either dump did, and each step ran on its queue.
    const check = activityEvents((await watchdog.fetchHistory()).events ?? [], 'checkRpo');
    assert.equal(check.queue, taskQueue);
    assert.ok(check.completed !== undefined);
    for (const backup of backups) {
      const events = (await backup.fetchHistory()).events ?? [];
      const dump = activityEvents(events, 'dumpDatabase');
      assert.equal(dump.queue, longTaskQueue, 'the dump was scheduled on the long task queue');
      assert.equal(activityEvents(events, 'verifyBackup').queue, longTaskQueue);
      assert.equal(activityEvents(events, 'checkDatabase').queue, taskQueue);
      assert.equal(activityEvents(events, 'catalogBackup').queue, taskQueue);
      assert.ok(dump.scheduled < check.completed!, 'the dump was under way before the check completed');
      assert.ok(dump.completed !== undefined && check.completed! < dump.completed, `checkRpo completed (${check.completed}) before the dump of ${backup.workflowId} (${dump.completed})`);
    }
  });
});
