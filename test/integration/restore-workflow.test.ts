import { Client, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { parseBackupId } from '../../src/catalog/naming';
import { pgTool } from '../../src/postgres/binaries';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { connectTemporal } from '../../src/temporal/client';
import { dataConverterFor } from '../../src/temporal/data-converter';
import { createWorker, type LifelineWorker } from '../../src/temporal/worker';
import { ensureTemporalCli } from '../../src/infra/tools';
import { waitFor } from '../../src/infra/net';
import {
  approveUpdate,
  BACKUP_WORKFLOW_TYPE,
  cancelUpdate,
  planQuery,
  RESTORE_WORKFLOW_TYPE,
  restoreStateQuery,
  type BackupWorkflowResult,
  type RestoreWorkflowInput,
  type RestoreWorkflowResult,
} from '../../workflows/definitions';
import { auditLogOf } from '../../src/audit/audit-log';
import { contentOf, schemaOf } from '../harness/compare';
import { query, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);

describe('restoreWorkflow: approval, full and table restores', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let worker: LifelineWorker;
  let running: Promise<void>;
  let first: BackupWorkflowResult;
  let second: BackupWorkflowResult;
  let atBackup: Awaited<ReturnType<typeof contentOf>>;
  let ownerUrl: string;

  const admin = (db = 'rs_source') => servers.cluster.adminUrl(db);
  const backup = async () =>
    (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `rs-backup-${Date.now()}`,
      args: [{ database: 'rs_source' }],
    })) as BackupWorkflowResult;
  const startRestore = (input: Partial<RestoreWorkflowInput>) =>
    client.workflow.start(RESTORE_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `rs-restore-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`,
      args: [{ database: 'rs_source', requestedBy: 'test', ...input }],
    });
  const waitingFor = async (handle: WorkflowHandle) =>
    waitFor('the restore to wait for approval', async () => (await handle.query(restoreStateQuery)) === 'WAITING_APPROVAL', 60_000);

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'rs_source');
    ownerUrl = source.url;
    const prod = await seededDatabase(servers, 'rs_prod');
    // What a restoring role needs (see README): create/rename databases, end sessions, bypass FK cascades.
    for (const role of ['rs_source_owner', 'rs_prod_owner']) {
      await servers.cluster.sql(`ALTER ROLE ${role} CREATEDB`);
      await servers.cluster.sql(`GRANT pg_signal_backend TO ${role}`);
      await servers.cluster.sql(`GRANT SET ON PARAMETER session_replication_role TO ${role}`);
    }
    setup = await testConfig(servers, 'restore', [
      {
        name: 'rs_source',
        url: source.url,
        // Forced restores are opt-in: a test database that allows them.
        production: false,
        allowForceRestore: true,
        restoreChecks: {
          sql: ['SELECT count(*) > 0 FROM public.users'],
          // Stands in for `npm run test:critical-paths`: it gets the restored database's URL.
          command: `test "$(${pgTool('psql')} -X -tAc 'SELECT count(*) FROM public.accounts' "$DATABASE_URL")" -gt 0`,
        },
      },
      { name: 'rs_prod', url: prod.url, production: true },
    ], { env: { BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS: 'true' } }); // the undo restores into a new URL target
    // URL targets get their password the libpq way.
    const pgpass = path.join(setup.dir, 'pgpass');
    writeFileSync(pgpass, `127.0.0.1:${servers.cluster.port}:*:rs_source_owner:${source.password}\n`, { mode: 0o600 });
    process.env.PGPASSFILE = pgpass;
    client = new Client({ connection: await connectTemporal(servers.temporalAddress), dataConverter: dataConverterFor(setup.config) });
    worker = await createWorker(setup.config);
    running = worker.run();
    first = await backup();
    atBackup = await contentOf(admin());
    await new Promise((r) => setTimeout(r, 1100)); // backup ids have one-second resolution
    await query(admin(), `INSERT INTO public.categories VALUES (99, 'After the first backup', NULL)`);
    second = await backup();
    await query(admin(), `DELETE FROM public.categories WHERE id = 99`);
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await client?.connection.close();
  });

  it('--at picks the newest backup taken at or before the time', async () => {
    const handle = await startRestore({ at: new Date(Date.now()).toISOString(), approvalTimeout: '1h' });
    await waitingFor(handle);
    assert.equal((await handle.query(planQuery))?.backupId, second.backupId);
    await handle.executeUpdate(cancelUpdate, { args: [{ by: 'test', reason: 'only looking' }] });
    assert.equal(((await handle.result()) as RestoreWorkflowResult).outcome, 'cancelled');
    const justBeforeSecond = parseBackupId(second.backupId)!.at.getTime() - 1;
    const early = await startRestore({ at: new Date(justBeforeSecond).toISOString(), approvalTimeout: '1h' });
    await waitingFor(early);
    assert.equal((await early.query(planQuery))?.backupId, first.backupId);
    await early.executeUpdate(cancelUpdate, { args: [{ by: 'test' }] });
    await early.result();
  });

  it('changes nothing while it waits, when cancelled, and when nobody answers in time', async () => {
    const before = await contentOf(admin());
    const handle = await startRestore({ approvalTimeout: '1h', reason: 'drill' });
    await waitingFor(handle);
    const plan = await handle.query(planQuery);
    assert.equal(plan?.backupId, second.backupId);
    assert.equal(plan?.target.exists, true);
    assert.match(plan!.summary, /replace the whole database/);
    await assert.rejects(handle.executeUpdate(approveUpdate, { args: [{ by: '' }] }), (err: Error) => {
      assert.ok(err instanceof WorkflowUpdateFailedError);
      assert.match(String(err.cause?.message), /a decision needs a name/);
      return true;
    });
    assert.deepEqual(await contentOf(admin()), before);
    assert.equal(await handle.executeUpdate(cancelUpdate, { args: [{ by: 'bob', reason: 'wrong backup' }] }), 'cancelled by bob');
    const result = (await handle.result()) as RestoreWorkflowResult;
    assert.equal(result.outcome, 'cancelled');
    assert.equal(result.decision?.by, 'bob');
    assert.deepEqual(await contentOf(admin()), before);

    const timedOut = await startRestore({ approvalTimeout: '2s' });
    const r2 = (await timedOut.result()) as RestoreWorkflowResult;
    assert.equal(r2.outcome, 'cancelled');
    assert.equal(r2.decision?.decision, 'timed out');
    assert.deepEqual(await contentOf(admin()), before);
  });

  it('rejects an unknown table before asking anyone, listing the tables the backup holds', async () => {
    const handle = await startRestore({ mode: 'tables', tables: ['users', 'nope'] });
    await assert.rejects(handle.result(), (err: Error) => {
      let cause: Error | undefined = err;
      while (cause?.cause instanceof Error) cause = cause.cause;
      assert.match(cause!.message, /"nope" is not in backup .*The backup holds: .*public\.accounts.*public\.users/);
      return true;
    });
  });

  it('refuses force on a production target, and runs a forced restore at once where allowed', async () => {
    const refused = await startRestore({ target: 'rs_prod', force: true });
    await assert.rejects(refused.result(), (err: Error) => /force refused: target rs_prod is a production database that does not allow forced restores/.test(String((err.cause as Error)?.message)));
    assert.equal(await refused.query(restoreStateQuery), 'FAILED');

    await query(admin(), `UPDATE public.users SET full_name = 'forced?' WHERE id = 1`);
    const forced = await startRestore({ force: true, backup: second.backupId });
    const result = (await forced.result()) as RestoreWorkflowResult;
    assert.equal(result.outcome, 'restored');
    assert.equal(result.decision?.decision, 'forced');
    const [row] = await query<{ n: string }>(admin(), `SELECT full_name AS n FROM public.users WHERE id = 1`);
    assert.notEqual(row!.n, 'forced?');
  });

  it('restores the whole database after approval, keeps the old one, and its snapshot undoes it', async () => {
    await query(admin(), `DELETE FROM public.budgets; UPDATE public.transactions_2025 SET memo = 'edited after backup'`);
    const changed = await contentOf(admin());
    const handle = await startRestore({ backup: first.backupId, approvalTimeout: '1h' });
    await waitingFor(handle);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', reason: 'bad migration' }] });
    const result = (await handle.result()) as RestoreWorkflowResult;
    assert.equal(result.outcome, 'restored');
    assert.deepEqual(await contentOf(admin()), atBackup);
    assert.ok(result.rto && result.rto.met && result.rto.approvalToVerifiedMs > 0);
    // The audit trail: who asked, who approved, what was restored, chained and intact.
    const audit = auditLogOf(setup.config);
    const mine = (await audit.entries()).filter((e) => e.details?.workflowId === handle.workflowId);
    assert.deepEqual(mine.map((e) => [e.action, e.actor, e.backupId]), [
      ['restore.request', 'test', first.backupId],
      ['restore.approved', 'alice', first.backupId],
      ['restore', 'alice', first.backupId],
    ]);
    assert.equal((await audit.verify()).ok, true);
    assert.ok(result.verification!.tables.every((t) => t.actual === t.expected));
    assert.ok(result.verification!.checks.some((c) => c.name.startsWith('sql:') && c.ok));
    assert.ok(result.verification!.checks.some((c) => c.name.startsWith('command:') && c.ok));
    assert.ok(result.previousDatabase, 'the replaced database is kept');
    assert.deepEqual(await contentOf(admin(result.previousDatabase)), changed);
    assert.ok(result.snapshotId);

    // The pre-restore snapshot restores into a new database the state just before the restore.
    const url = new URL(ownerUrl);
    url.password = '';
    url.pathname = '/rs_undo';
    const undo = await startRestore({ backup: result.snapshotId, target: url.toString(), force: true });
    assert.equal(((await undo.result()) as RestoreWorkflowResult).outcome, 'restored');
    assert.deepEqual(await contentOf(admin('rs_undo')), changed);
    if (process.env.LIFELINE_RECORD_HISTORY) {
      writeFileSync(path.join(__dirname, '..', 'replay', 'histories', 'restore-approved.json'), historyToJSON(await handle.fetchHistory()));
    }
    assert.equal(await schemaOf(admin('rs_undo')), await schemaOf(admin(result.previousDatabase)));
  });

  it('restores only the named tables, leaving rows that reference them alone', async () => {
    const usersAtBackup = atBackup['public.users'];
    await query(admin(), `UPDATE public.users SET full_name = 'renamed' WHERE id <= 5`);
    await query(admin(), `DELETE FROM public.users WHERE id = 7`); // cascades to its accounts now, as it would in production
    const accountsBefore = (await contentOf(admin()))['public.accounts'];
    const handle = await startRestore({ mode: 'tables', tables: ['users'], backup: first.backupId, force: true });
    const result = (await handle.result()) as RestoreWorkflowResult;
    assert.equal(result.outcome, 'restored');
    const after = await contentOf(admin());
    assert.deepEqual(after['public.users'], usersAtBackup);
    assert.deepEqual(after['public.accounts'], accountsBefore, 'accounts untouched (no cascade)');
  });

  it('works from the Temporal CLI: workflow start, then signal approve', async () => {
    const cli = await ensureTemporalCli();
    const id = `rs-cli-${Date.now()}`;
    const input = JSON.stringify({ database: 'rs_source', requestedBy: 'cli', mode: 'tables', tables: ['categories'], approvalTimeout: '10m' });
    const common = ['--address', servers.temporalAddress, '--namespace', 'default'];
    await run(cli, ['workflow', 'start', ...common, '--task-queue', setup.config.temporal.taskQueue, '--type', RESTORE_WORKFLOW_TYPE, '--workflow-id', id, '--input', input]);
    const handle = client.workflow.getHandle(id);
    await waitingFor(handle);
    await run(cli, ['workflow', 'signal', ...common, '--workflow-id', id, '--name', 'approve', '--input', '{"by":"alice"}']);
    const result = (await handle.result()) as RestoreWorkflowResult;
    assert.equal(result.outcome, 'restored');
    assert.equal(result.decision?.by, 'alice');
  });
});
