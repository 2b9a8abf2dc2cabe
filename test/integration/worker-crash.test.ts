import { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { keyringFor } from '../../src/crypto/keys';
import { storedObjects } from '../../src/parts/parts-of';
import { waitFor } from '../../src/infra/net';
import { connectTemporal } from '../../src/temporal/client';
import { dataConverterFor } from '../../src/temporal/data-converter';
import { stopProcess } from '../../src/infra/server-process';
import { BACKUP_WORKFLOW_TYPE, BackupDatabase, RESTORE_WORKFLOW_TYPE, type BackupWorkflowResult, type RestoreWorkflowResult } from '../../workflows/definitions';
import { query, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';
import { lockTable } from '../harness/locks';

const root = path.resolve(__dirname, '..', '..');

/** A real `lifeline worker` process, so that it can really be killed. Its configuration is all in env. */
function startWorker(setup: TestSetup): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'worker'], {
    cwd: root,
    env: { ...process.env, ...setup.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}


/** Sessions of a database waiting for a lock; asked on a connection of its own (inside the locker's transaction pg_stat_activity is a snapshot). */
async function lockWaiters(servers: TestServers, database: string): Promise<number> {
  const [row] = await servers.cluster.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = '${database}' AND wait_event_type = 'Lock'`);
  return row!.n;
}

/** Temporary files in a database's repository folder. */
function partialFiles(folder: string): string[] {
  try {
    return readdirSync(folder).filter((f) => f.endsWith('.partial'));
  } catch {
    return [];
  }
}

interface Suite {
  servers: TestServers;
  setup: TestSetup;
  client: Client;
  /** Worker processes started by the test; the suite stops them at the end. */
  workers: ChildProcess[];
  locker?: pg.Client;
}

/** One seeded database with its own configuration and task queue, for tests that run `lifeline worker` processes. */
function suiteWithWorkerProcesses(database: string, label: string, env: Record<string, string> = {}): Suite {
  const ctx = { workers: [] as ChildProcess[] } as Suite;
  before(async () => {
    ctx.servers = await testServers();
    const source = await seededDatabase(ctx.servers, database);
    await ctx.servers.cluster.sql(`GRANT SET ON PARAMETER session_replication_role TO ${database}_owner`);
    ctx.setup = await testConfig(ctx.servers, label, [{ name: database, url: source.url, production: false, allowForceRestore: true }]);
    Object.assign(ctx.setup.env, env);
    ctx.client = new Client({ connection: await connectTemporal(ctx.servers.temporalAddress), dataConverter: dataConverterFor(ctx.setup.config) });
  });
  after(async () => {
    await ctx.locker?.end().catch(() => undefined);
    for (const w of ctx.workers) await stopProcess(w, 2000);
    await ctx.client?.connection.close();
  });
  return ctx;
}

describe('a worker killed in the middle of a dump', () => {
  const ctx = suiteWithWorkerProcesses('it_crash', 'crash');

  it('is replaced by another worker; the backup completes once, with no partial file left', { timeout: 180_000 }, async () => {
    ctx.locker = await lockTable(ctx.servers.cluster.adminUrl('it_crash'), 'public.users');

    const first = startWorker(ctx.setup);
    ctx.workers.push(first);
    const handle = await ctx.client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: ctx.setup.config.temporal.taskQueue,
      workflowId: `it-crash-${Date.now()}`,
      args: [{ database: 'it_crash' }],
      typedSearchAttributes: [{ key: BackupDatabase, value: 'it_crash' }],
    });

    const folder = path.join(ctx.setup.env.BACKUP_DIR!, 'it_crash');
    // Under way: a session of the dump (the snapshot's, taking its tables' locks) waits on the lock.
    await waitFor('the dump to wait on the lock', async () => (await lockWaiters(ctx.servers, 'it_crash')) >= 1, 60_000);

    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    ctx.workers.push(startWorker(ctx.setup));
    await ctx.locker.query('COMMIT');
    await ctx.locker.end();
    ctx.locker = undefined;

    const result = (await handle.result()) as BackupWorkflowResult;
    const history = await handle.fetchHistory();
    const dumpAttempts = history.events!.filter((e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.attempt! > 1);
    assert.ok(dumpAttempts.length >= 1, 'the dump ran again on the new worker');

    const db = ctx.setup.config.databases[0]!;
    const manifests = await catalogFor(db).list('it_crash');
    assert.deepEqual(manifests.map((m) => m.id), [result.backupId]);
    const files = readdirSync(folder).sort();
    assert.deepEqual(files, [...storedObjects(manifests[0]!).map((o) => path.basename(o.key)), `${result.backupId}.manifest.json`].sort());
    await verifyBackup(localStorageFor(db), manifests[0]!, keyringFor(ctx.setup.config));
  });
});

describe('a worker stopped with SIGTERM in the middle of a dump', () => {
  const ctx = suiteWithWorkerProcesses('it_term', 'term', { LIFELINE_SHUTDOWN_GRACE_SECONDS: '2' });

  it('cancels the dump cleanly after its grace time: pg_dump killed, no partial file', { timeout: 120_000 }, async () => {
    ctx.locker = await lockTable(ctx.servers.cluster.adminUrl('it_term'), 'public.users');
    const worker = startWorker(ctx.setup);
    ctx.workers.push(worker);
    await ctx.client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: ctx.setup.config.temporal.taskQueue,
      workflowId: `it-term-${Date.now()}`,
      args: [{ database: 'it_term' }],
    });
    const folder = path.join(ctx.setup.env.BACKUP_DIR!, 'it_term');
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
    await waitFor('the dump to wait on the lock', async () => (await lockWaiters(ctx.servers, 'it_term')) >= 1, 60_000);

    const exited = new Promise<number | null>((r) => worker.once('exit', (code) => r(code)));
    worker.kill('SIGTERM');
    assert.equal(await exited, 0, 'the worker shuts down cleanly');
    await waitFor('pg_dump to be gone', async () => (await dumps()) === 0, 10_000);
    await waitFor('the dump\'s sessions to be gone', async () => (await lockWaiters(ctx.servers, 'it_term')) === 0, 10_000);
    assert.deepEqual(partialFiles(folder), []);
  });
});

describe('a worker killed in the middle of a table restore', () => {
  const ctx = suiteWithWorkerProcesses('rk_source', 'restore-kill');

  it('ends in a completed restore, never a half-restored table', { timeout: 180_000 }, async () => {
    const url = ctx.servers.cluster.adminUrl('rk_source');
    ctx.workers.push(startWorker(ctx.setup));
    const backup = (await ctx.client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: ctx.setup.config.temporal.taskQueue,
      workflowId: `rk-backup-${Date.now()}`,
      args: [{ database: 'rk_source' }],
    })) as BackupWorkflowResult;
    const usersAtBackup = (await query<{ n: string }>(url, `SELECT md5(string_agg(u::text, ',' ORDER BY id)) AS n FROM public.users u`))[0]!.n;
    await query(url, `UPDATE public.users SET full_name = 'changed after backup'`);
    const changed = (await query<{ n: string }>(url, `SELECT md5(string_agg(u::text, ',' ORDER BY id)) AS n FROM public.users u`))[0]!.n;

    // SHARE lets the pre-restore snapshot read users but holds the restore's DELETE mid-transaction.
    ctx.locker = new pg.Client({ connectionString: url });
    await ctx.locker.connect();
    await ctx.locker.query('BEGIN');
    await ctx.locker.query('LOCK TABLE public.users IN SHARE MODE');
    const handle = await ctx.client.workflow.start(RESTORE_WORKFLOW_TYPE, {
      taskQueue: ctx.setup.config.temporal.taskQueue,
      workflowId: `rk-restore-${Date.now()}`,
      args: [{ database: 'rk_source', requestedBy: 'test', mode: 'tables', tables: ['users'], backup: backup.backupId, force: true }],
    });
    // Asked on a connection of its own: inside the ctx.locker's transaction pg_stat_activity is a snapshot.
    await waitFor(
      'the table restore to be inside its transaction',
      async () =>
        (await query<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'rk_source' AND application_name LIKE 'lifeline-restore-tables-%' AND wait_event_type = 'Lock'`))[0]!.n > 0,
      90_000,
    );
    const dying = ctx.workers.pop()!;
    dying.kill('SIGKILL');
    await new Promise((r) => dying.once('exit', r));
    const during = (await query<{ n: string }>(url, `SELECT md5(string_agg(u::text, ',' ORDER BY id)) AS n FROM public.users u`))[0]!.n;
    assert.equal(during, changed, 'nothing of the restore is visible');

    ctx.workers.push(startWorker(ctx.setup));
    await ctx.locker.query('COMMIT');
    await ctx.locker.end();
    ctx.locker = undefined;
    const result = (await handle.result()) as RestoreWorkflowResult;
    assert.equal(result.outcome, 'restored');
    const after = (await query<{ n: string }>(url, `SELECT md5(string_agg(u::text, ',' ORDER BY id)) AS n FROM public.users u`))[0]!.n;
    assert.equal(after, usersAtBackup);
  });
});
