/**
 * Issue 10, items 4, 5 and 13 (notices): the restore guards cannot be walked around.
 * - a URL target that names a configured database inherits its production/force flags, whatever the
 *   spelling; any other URL takes --force only where allowForceRestoreToUrlTargets says so;
 * - a database configured by DATABASE_URL alone is production: --force is refused;
 * - a decision counts only while the restore waits, with a name, and (production) not from the
 *   requester; one that does not count is in the `decisions`/`plan` queries and the audit trail;
 * - the failure notice says what happened to the target.
 */
import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode } from '@temporalio/worker';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog, auditLogFile, type AuditEntry } from '../../src/audit/audit-log';
import type { LifelineConfig } from '../../src/config/config';
import { loadConfig } from '../../src/config/load';
import { waitFor } from '../../src/infra/net';
import { createWorker } from '../../src/temporal/worker';
import {
  approveSignal,
  approveUpdate,
  BACKUP_WORKFLOW_TYPE,
  cancelUpdate,
  decisionsQuery,
  planQuery,
  RESTORE_WORKFLOW_TYPE,
  restoreStateQuery,
  type DecisionRecord,
  type RestoreWorkflowInput,
  type RestoreWorkflowResult,
} from '../../workflows/definitions';
import { contentOf } from '../harness/compare';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';
import { webhookReceiver } from '../harness/webhook-receiver';
import { testClient } from '../harness/worker';

/** The innermost failure: its message and type (ForceRefused, …). */
function rootFailure(err: unknown): { message: string; type?: string } {
  let current = err as { message: string; type?: string; cause?: unknown };
  while (current.cause instanceof Error) current = current.cause as typeof current;
  return current;
}

describe('restore guards: URL targets, DATABASE_URL, decisions, failure notices', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let hook: Awaited<ReturnType<typeof webhookReceiver>>;
  const stops: Array<() => Promise<void>> = [];
  /** Task queues: the fleet as configured; the same with forced URL restores on; DATABASE_URL alone. */
  const queue = { fleet: '', urlForce: '', databaseUrlOnly: '' };
  let port = 0;

  const admin = (db: string) => servers.cluster.adminUrl(db);
  const start = (on: string, input: Partial<RestoreWorkflowInput>) =>
    client.workflow.start(RESTORE_WORKFLOW_TYPE, {
      taskQueue: on,
      workflowId: `guards-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`,
      args: [{ database: 'g_dev', requestedBy: 'requester', approvalTimeout: '1h', ...input }],
    });
  const waiting = (handle: WorkflowHandle) =>
    waitFor('the restore to wait for approval', async () => (await handle.query(restoreStateQuery)) === 'WAITING_APPROVAL', 120_000);
  const decisionsOf = (handle: WorkflowHandle) => handle.query(decisionsQuery);
  const refusedIn = async (handle: WorkflowHandle, count: number): Promise<DecisionRecord[]> => {
    await waitFor(`${count} refused decision(s) in the workflow's state`, async () => (await decisionsOf(handle)).filter((d) => !d.counted).length >= count, 60_000);
    return (await decisionsOf(handle)).filter((d) => !d.counted);
  };
  const auditOf = async (handle: WorkflowHandle): Promise<AuditEntry[]> =>
    (await new AuditLog(auditLogFile(setup.config.backupDir)).entries()).filter((e) => e.details?.workflowId === handle.workflowId);
  /** The refused decisions in the audit trail, once `count` are there (the audit step runs after the decision is taken). */
  const refusalsAudited = async (handle: WorkflowHandle, count: number): Promise<AuditEntry[]> => {
    const refusals = async () => (await auditOf(handle)).filter((e) => e.action === 'restore.approve-refused');
    await waitFor(`${count} refused decision(s) in the audit trail`, async () => (await refusals()).length >= count, 60_000);
    return refusals();
  };
  const refusedFailure = async (handle: WorkflowHandle) => {
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err, 'the forced restore must be refused');
    return rootFailure(err);
  };

  before(async () => {
    servers = await testServers();
    port = servers.cluster.port;
    const dev = await seededDatabase(servers, 'g_dev');
    const prod = await seededDatabase(servers, 'g_prod');
    for (const role of ['g_dev_owner', 'g_prod_owner']) {
      await servers.cluster.sql(`ALTER ROLE ${role} CREATEDB`);
      await servers.cluster.sql(`GRANT pg_signal_backend TO ${role}`);
      await servers.cluster.sql(`GRANT SET ON PARAMETER session_replication_role TO ${role}`);
    }
    hook = await webhookReceiver();
    setup = await testConfig(
      servers,
      'guards',
      [
        // Says what it allows: a scratch database whose restores may be forced. Its check fails on
        // purpose, after a table restore has committed (the failure notice test).
        { name: 'g_dev', url: dev.url, production: false, allowForceRestore: true, restoreChecks: { sql: ['SELECT false AS checked_after_commit'] } },
        // Says nothing: production by default.
        { name: 'g_prod', url: prod.url },
      ],
      { env: { BACKUP_WEBHOOK_URL: hook.url } },
    );
    const pgpass = path.join(setup.dir, 'pgpass');
    writeFileSync(pgpass, ['g_dev_owner', dev.password, 'g_prod_owner', prod.password].map((v, i, a) => (i % 2 ? '' : `*:${port}:*:${v}:${a[i + 1]}\n`)).join(''), { mode: 0o600 });
    process.env.PGPASSFILE = pgpass;

    const urlForceEnv = { ...setup.env, LIFELINE_TASK_QUEUE: `${setup.env.LIFELINE_TASK_QUEUE}-urls`, BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS: 'true' };
    // The runbook's setup: no config file, DATABASE_URL (with its password) and the same repository.
    const { LIFELINE_CONFIG: _file, ...withoutFile } = setup.env;
    const databaseUrlOnlyEnv = { ...withoutFile, LIFELINE_TASK_QUEUE: `${setup.env.LIFELINE_TASK_QUEUE}-dburl`, DATABASE_URL: prod.url };
    const emptyDir = mkdtempSync(path.join(tmpdir(), 'lifeline-guards-env-'));
    const configs: LifelineConfig[] = [
      setup.config,
      loadConfig({ cwd: setup.dir, env: urlForceEnv }),
      loadConfig({ cwd: emptyDir, env: databaseUrlOnlyEnv }),
    ];
    [queue.fleet, queue.urlForce, queue.databaseUrlOnly] = configs.map((c) => c.temporal.taskQueue) as [string, string, string];
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: path.join(__dirname, '..', '..', 'workflows', 'index.ts'), logger: undefined });
    for (const config of configs) {
      const worker = await createWorker(config, { workflowBundle, workflowsPath: undefined });
      const running = worker.run();
      stops.push(async () => {
        worker.shutdown();
        await running;
      });
    }
    client = await testClient(servers, setup.config);
    for (const database of ['g_dev', 'g_prod']) {
      await client.workflow.execute(BACKUP_WORKFLOW_TYPE, { taskQueue: queue.fleet, workflowId: `guards-backup-${database}-${Date.now()}`, args: [{ database }] });
    }
  });

  after(async () => {
    for (const stop of stops) await stop();
    await client?.connection.close();
    hook?.close();
  });

  it('a URL naming a configured production database inherits its guards: --force is refused, however it is spelled', async () => {
    const before = await contentOf(admin('g_prod'));
    for (const target of [
      `postgresql://g_prod_owner@127.0.0.1:${port}/g_prod`,
      `postgres://g_prod_owner@LocalHost:${port}/g%5Fprod?sslmode=disable`,
      // The server's Unix socket folder, as the URL's (percent-encoded) host.
      `postgresql://g_prod_owner@${encodeURIComponent(servers.cluster.dir)}:${port}/g_prod`,
      // 127.0.0.1 as one 32-bit number (getaddrinfo reads it so for libpq and node-postgres).
      `postgresql://g_prod_owner@2130706433:${port}/g_prod`,
    ]) {
      const failure = await refusedFailure(await start(queue.fleet, { target, force: true, mode: 'tables', tables: ['categories'] }));
      assert.equal(failure.type, 'ForceRefused', `${target}: ${failure.message}`);
      // Which target, why, what to do.
      assert.match(failure.message, /g_prod/);
      assert.match(failure.message, /production/);
      assert.match(failure.message, /without --force.*approve.*allowForceRestore: true/);
    }
    assert.deepEqual(await contentOf(admin('g_prod')), before);
    const notice = hook.posts.find((p) => p.lifeline.event === 'restore.failed' && /force refused/.test(p.lifeline.text));
    assert.match(notice!.lifeline.text, /was not changed/);
  });

  it('an unconfigured URL target takes --force only where allowForceRestoreToUrlTargets says so', async () => {
    const target = `postgresql://g_dev_owner@127.0.0.1:${port}/g_scratch`;
    const failure = await refusedFailure(await start(queue.fleet, { target, force: true }));
    assert.equal(failure.type, 'ForceRefused');
    assert.match(failure.message, /127\.0\.0\.1:\d+\/g_scratch is a URL that names no configured database/);
    assert.match(failure.message, /BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS=true/);
    assert.equal((await servers.cluster.sql(`SELECT 1 FROM pg_database WHERE datname = 'g_scratch'`)).length, 0);

    const allowed = (await (await start(queue.urlForce, { target, force: true })).result()) as RestoreWorkflowResult;
    assert.equal(allowed.outcome, 'restored');
    assert.equal(allowed.decision?.decision, 'forced');
    assert.deepEqual(await contentOf(admin('g_scratch')), await contentOf(admin('g_dev')));
  });

  it('with DATABASE_URL alone the database is production: --force is refused', async () => {
    const env = { DATABASE_URL: 'postgresql://app:pw@db.internal:5432/moneyflow' };
    const [db] = loadConfig({ cwd: mkdtempSync(path.join(tmpdir(), 'lifeline-guards-')), env }).databases;
    assert.deepEqual([db!.production, db!.allowForceRestore], [true, false]);

    const before = await contentOf(admin('g_prod'));
    const failure = await refusedFailure(await start(queue.databaseUrlOnly, { database: 'g_prod', force: true, mode: 'tables', tables: ['categories'] }));
    assert.equal(failure.type, 'ForceRefused');
    assert.match(failure.message, /g_prod.*production/);
    assert.deepEqual(await contentOf(admin('g_prod')), before);
  });

  it('an approve signal sent while the restore is planning is refused, not applied once the plan exists', async () => {
    const before = await contentOf(admin('g_dev'));
    const handle = await client.workflow.signalWithStart(RESTORE_WORKFLOW_TYPE, {
      taskQueue: queue.fleet,
      workflowId: `guards-early-${Date.now()}`,
      args: [{ database: 'g_dev', requestedBy: 'requester', approvalTimeout: '1h', mode: 'tables', tables: ['categories'] }],
      signal: approveSignal,
      signalArgs: [{ by: 'bob', reason: 'approved unseen' }],
    });
    await waiting(handle);
    // Still undecided once the plan exists: the requester may withdraw their own request.
    assert.equal(await handle.executeUpdate(cancelUpdate, { args: [{ by: 'requester', reason: 'test over' }] }), 'cancelled by requester');
    assert.equal(((await handle.result()) as RestoreWorkflowResult).outcome, 'cancelled');
    assert.deepEqual(await contentOf(admin('g_dev')), before);
    const [early, cancel] = await decisionsOf(handle);
    assert.deepEqual([early!.decision, early!.by, early!.state, early!.via, early!.counted], ['approve', 'bob', 'PLANNING', 'signal', false]);
    assert.match(early!.refused!, /plan is not ready/);
    assert.deepEqual([cancel!.decision, cancel!.counted], ['cancel', true]);
    const refused = await refusalsAudited(handle, 1);
    assert.deepEqual(refused.map((e) => [e.actor, e.status, e.details?.state]), [['bob', 'refused', 'PLANNING']]);
  });

  it('a decision without a name changes nothing, by signal or by update', async () => {
    const handle = await start(queue.fleet, { mode: 'tables', tables: ['categories'] });
    await waiting(handle);
    await handle.signal(approveSignal, {} as never);
    await handle.signal(approveSignal, { by: '   ' });
    // Handled after the signals before it.
    await assert.rejects(handle.executeUpdate(approveUpdate, { args: [{} as never] }), (err: Error) => {
      assert.ok(err instanceof WorkflowUpdateFailedError);
      assert.match(rootFailure(err).message, /a decision needs a name/);
      return true;
    });
    assert.equal(await handle.query(restoreStateQuery), 'WAITING_APPROVAL');
    assert.deepEqual((await handle.query(planQuery))?.decisions?.map((d) => d.counted), [false, false, false]);
    const refused = await refusedIn(handle, 3);
    assert.deepEqual(refused.map((d) => [d.by, d.via]), [['', 'signal'], ['', 'signal'], ['', 'update']]);
    assert.ok(refused.every((d) => /needs a name/.test(d.refused!)));
    const audit = await refusalsAudited(handle, 3);
    assert.deepEqual(audit.map((e) => e.actor), ['(no name)', '(no name)', '(no name)']);
    await handle.executeUpdate(cancelUpdate, { args: [{ by: 'carol', reason: 'test over' }] });
    assert.equal(((await handle.result()) as RestoreWorkflowResult).outcome, 'cancelled');
  });

  it('the requester cannot approve their own restore of a production database; someone else can', async () => {
    const handle = await start(queue.fleet, { database: 'g_prod', requestedBy: 'Alice', mode: 'tables', tables: ['categories'] });
    await waiting(handle);
    await handle.signal(approveSignal, { by: ' alice ' });
    await assert.rejects(handle.executeUpdate(approveUpdate, { args: [{ by: 'ALICE' }] }), (err: Error) => {
      assert.match(rootFailure(err).message, /Alice asked for this restore; its approval must come from someone else \(four eyes\)/);
      return true;
    });
    assert.equal(await handle.query(restoreStateQuery), 'WAITING_APPROVAL');
    // Production by default: the configuration says nothing about g_prod.
    assert.equal((await handle.query(planQuery))?.target.production, true);
    const refused = await refusedIn(handle, 2);
    assert.deepEqual(refused.map((d) => [d.by, d.via]), [['alice', 'signal'], ['ALICE', 'update']]);
    const audit = await refusalsAudited(handle, 2);
    // Two refusals recorded at once reach the audit trail in either order; each carries its own time.
    const byVia = audit.map((e) => [e.actor, e.database, e.details?.via]).sort((x, y) => String(x[2]).localeCompare(String(y[2])));
    assert.deepEqual(byVia, [['alice', 'g_prod', 'signal'], ['ALICE', 'g_prod', 'update']]);
    assert.match(String(audit[0]!.details?.refused), /four eyes/);

    assert.equal(await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob', reason: 'checked the plan' }] }), 'approved by bob');
    const result = (await handle.result()) as RestoreWorkflowResult;
    assert.equal(result.outcome, 'restored');
    assert.equal(result.decision?.by, 'bob');
    assert.deepEqual((await decisionsOf(handle)).map((d) => d.counted), [false, false, true]);
    assert.ok((await auditOf(handle)).some((e) => e.action === 'restore.approved' && e.actor === 'bob'));
    if (process.env.LIFELINE_RECORD_HISTORY) {
      writeFileSync(path.join(__dirname, '..', 'replay', 'histories', 'restore-refused-decisions.json'), historyToJSON(await handle.fetchHistory()));
    }
  });

  it('look-alikes of the requester\'s name do not count as someone else', async () => {
    const handle = await start(queue.fleet, { database: 'g_prod', requestedBy: 'Alice', mode: 'tables', tables: ['categories'] });
    await waiting(handle);
    const lookAlikes: Array<[string, RegExp]> = [
      ['alice\u200b', /no invisible characters/], // a zero-width space after the name
      ['alice\u034f', /no invisible characters/], // a combining grapheme joiner (Mn)
      ['alice\ufe0f', /no invisible characters/], // a variation selector
      ['alice\u3164', /no invisible characters/], // a Hangul filler (a "letter" that renders as nothing)
      ['\u0430lice', /may not mix scripts \(Latin and Cyrillic\)/], // a Cyrillic "а"
      ['\uff21\uff2c\uff29\uff23\uff25', /four eyes/], // full-width ALICE
      ['\u0430\u04cf\u0456\u0441\u0435', /four eyes/], // all-Cyrillic "аӏісе"
      ['al\u0131ce', /four eyes/], // a dotless ı
    ];
    for (const [by, why] of lookAlikes) {
      await assert.rejects(handle.executeUpdate(approveUpdate, { args: [{ by }] }), (err: Error) => {
        assert.match(rootFailure(err).message, why);
        return true;
      });
    }
    assert.equal(await handle.query(restoreStateQuery), 'WAITING_APPROVAL');
    assert.deepEqual((await decisionsOf(handle)).map((d) => d.counted), lookAlikes.map(() => false));
    await handle.executeUpdate(cancelUpdate, { args: [{ by: 'carol', reason: 'test over' }] });
    assert.equal(((await handle.result()) as RestoreWorkflowResult).outcome, 'cancelled');
  });

  it('a failure after the tables were committed says they were replaced', async () => {
    const handle = await start(queue.fleet, { mode: 'tables', tables: ['categories'], force: true });
    await assert.rejects(handle.result());
    await waitFor('the failure notice', async () => hook.posts.some((p) => p.lifeline.event === 'restore.failed' && p.lifeline.text.includes(handle.workflowId)), 60_000);
    const notice = hook.posts.find((p) => p.lifeline.event === 'restore.failed' && p.lifeline.text.includes(handle.workflowId))!;
    assert.match(notice.lifeline.text, /checked_after_commit/);
    assert.match(notice.lifeline.text, /WERE replaced/);
    assert.doesNotMatch(notice.lifeline.text, /not replaced|not changed/);
  });
});
