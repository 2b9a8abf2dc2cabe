import { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { keyProviderFor } from '../../src/crypto/keys';
import { waitFor } from '../../src/infra/net';
import { connectTemporal } from '../../src/temporal/client';
import { stopProcess } from '../../src/infra/temporal-dev-server';
import { BACKUP_WORKFLOW_TYPE, BackupDatabase, RESTORE_WORKFLOW_TYPE, type BackupWorkflowResult, type RestoreWorkflowResult } from '../../workflows/definitions';
import { query, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';

const root = path.resolve(__dirname, '..', '..');

/** A real `lifeline worker` process, so that it can really be killed. Its configuration is all in env. */
function startWorker(setup: TestSetup): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'worker'], {
    cwd: root,
    env: { ...process.env, ...setup.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

/** Holds pg_dump inside the dump: a table it must read stays locked until the returned client commits. */
async function lockTable(url: string, table: string): Promise<pg.Client> {
  const locker = new pg.Client({ connectionString: url });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  return locker;
}

/** Temporary files in a database's repository folder. */
function partialFiles(folder: string): string[] {
  try {
    return readdirSync(folder).filter((f) => f.endsWith('.partial'));
  } catch {
    return [];
  }
}

describe('a worker killed in the middle of a dump', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let locker: pg.Client | undefined;
  const workers: ChildProcess[] = [];

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'it_crash');
    setup = await testConfig(servers, 'crash', [{ name: 'it_crash', url: source.url }]);
    client = new Client({ connection: await connectTemporal(servers.temporalAddress) });
  });

  after(async () => {
    await locker?.end().catch(() => undefined);
    for (const w of workers) await stopProcess(w, 2000);
    await client?.connection.close();
  });

  it('is replaced by another worker; the backup completes once, with no partial file left', { timeout: 180_000 }, async () => {
    locker = await lockTable(servers.cluster.adminUrl('it_crash'), 'public.users');

    const first = startWorker(setup);
    workers.push(first);
    const handle = await client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `it-crash-${Date.now()}`,
      args: [{ database: 'it_crash' }],
      typedSearchAttributes: [{ key: BackupDatabase, value: 'it_crash' }],
    });

    const folder = path.join(setup.env.BACKUP_DIR!, 'it_crash');
    await waitFor('the dump to be under way', async () => partialFiles(folder).length > 0, 60_000);
    const dumping = await locker.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'it_crash' AND wait_event_type = 'Lock'`);
    assert.ok(dumping.rows[0].n >= 1, 'pg_dump or the row count is waiting on the lock');

    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    workers.push(startWorker(setup));
    await locker.query('COMMIT');
    await locker.end();
    locker = undefined;

    const result = (await handle.result()) as BackupWorkflowResult;
    const history = await handle.fetchHistory();
    const dumpAttempts = history.events!.filter((e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.attempt! > 1);
    assert.ok(dumpAttempts.length >= 1, 'the dump ran again on the new worker');

    const db = setup.config.databases[0]!;
    const manifests = await catalogFor(db).list('it_crash');
    assert.deepEqual(manifests.map((m) => m.id), [result.backupId]);
    const files = readdirSync(folder).sort();
    assert.deepEqual(files, [`${result.backupId}.dump.zst.enc`, `${result.backupId}.manifest.json`]);
    await verifyBackup(localStorageFor(db), manifests[0]!, keyProviderFor(setup.config));
  });
});

describe('a worker stopped with SIGTERM in the middle of a dump', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let locker: pg.Client | undefined;
  let worker: ChildProcess | undefined;

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'it_term');
    setup = await testConfig(servers, 'term', [{ name: 'it_term', url: source.url }]);
    setup.env.LIFELINE_SHUTDOWN_GRACE_SECONDS = '2';
    client = new Client({ connection: await connectTemporal(servers.temporalAddress) });
  });

  after(async () => {
    await locker?.end().catch(() => undefined);
    if (worker) await stopProcess(worker, 2000);
    await client?.connection.close();
  });

  it('cancels the dump cleanly after its grace time: pg_dump killed, no partial file', { timeout: 120_000 }, async () => {
    locker = await lockTable(servers.cluster.adminUrl('it_term'), 'public.users');
    worker = startWorker(setup);
    await client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `it-term-${Date.now()}`,
      args: [{ database: 'it_term' }],
    });
    const folder = path.join(setup.env.BACKUP_DIR!, 'it_term');
    // pg_dump processes of this database, from /proc (its session may outlive it while blocked on the lock).
    const dumps = async () =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
            return argv[0]?.endsWith('pg_dump') && argv.some((a) => a.includes('/it_term'));
          } catch {
            return false;
          }
        }).length;
    await waitFor('the dump to be under way', async () => partialFiles(folder).length > 0 && (await dumps()) > 0, 60_000);

    const exited = new Promise<number | null>((r) => worker!.once('exit', (code) => r(code)));
    worker.kill('SIGTERM');
    assert.equal(await exited, 0, 'the worker shuts down cleanly');
    worker = undefined;
    await waitFor('pg_dump to be gone', async () => (await dumps()) === 0, 10_000);
    assert.deepEqual(partialFiles(folder), []);
  });
});

describe('a worker killed in the middle of a table restore', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let locker: pg.Client | undefined;
  const workers: ChildProcess[] = [];

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'rk_source');
    await servers.cluster.sql('GRANT SET ON PARAMETER session_replication_role TO rk_source_owner');
    setup = await testConfig(servers, 'restore-kill', [{ name: 'rk_source', url: source.url }]);
    client = new Client({ connection: await connectTemporal(servers.temporalAddress) });
  });

  after(async () => {
    await locker?.end().catch(() => undefined);
    for (const w of workers) await stopProcess(w, 2000);
    await client?.connection.close();
  });

  it('ends in a completed restore, never a half-restored table', { timeout: 180_000 }, async () => {
    const url = servers.cluster.adminUrl('rk_source');
    workers.push(startWorker(setup));
    const backup = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `rk-backup-${Date.now()}`,
      args: [{ database: 'rk_source' }],
    })) as BackupWorkflowResult;
    const usersAtBackup = (await query<{ n: string }>(url, `SELECT md5(string_agg(u::text, ',' ORDER BY id)) AS n FROM public.users u`))[0]!.n;
    await query(url, `UPDATE public.users SET full_name = 'changed after backup'`);
    const changed = (await query<{ n: string }>(url, `SELECT md5(string_agg(u::text, ',' ORDER BY id)) AS n FROM public.users u`))[0]!.n;

    // SHARE lets the pre-restore snapshot read users but holds the restore's DELETE mid-transaction.
    locker = new pg.Client({ connectionString: url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE public.users IN SHARE MODE');
    const handle = await client.workflow.start(RESTORE_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `rk-restore-${Date.now()}`,
      args: [{ database: 'rk_source', requestedBy: 'test', mode: 'tables', tables: ['users'], backup: backup.backupId, force: true }],
    });
    // Asked on a connection of its own: inside the locker's transaction pg_stat_activity is a snapshot.
    await waitFor(
      'the table restore to be inside its transaction',
      async () =>
        (await query<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'rk_source' AND application_name = 'psql' AND wait_event_type = 'Lock'`))[0]!.n > 0,
      90_000,
    );
    const dying = workers.pop()!;
    dying.kill('SIGKILL');
    await new Promise((r) => dying.once('exit', r));
    const during = (await query<{ n: string }>(url, `SELECT md5(string_agg(u::text, ',' ORDER BY id)) AS n FROM public.users u`))[0]!.n;
    assert.equal(during, changed, 'nothing of the restore is visible');

    workers.push(startWorker(setup));
    await locker.query('COMMIT');
    await locker.end();
    locker = undefined;
    const result = (await handle.result()) as RestoreWorkflowResult;
    assert.equal(result.outcome, 'restored');
    const after = (await query<{ n: string }>(url, `SELECT md5(string_agg(u::text, ',' ORDER BY id)) AS n FROM public.users u`))[0]!.n;
    assert.equal(after, usersAtBackup);
  });
});
