/**
 * Issue 11: a worker killed (SIGKILL) in the middle of a parallel dump, and in the middle of a
 * parallel full restore, leaves nothing half-written, and the workflow completes exactly once on
 * the worker started after it. Both scenarios run at once (each waits ~40 s for Temporal to notice
 * the dead worker: 30 s heartbeat timeout, then the retry's 10 s back-off).
 *
 * Holding each step in its middle, without timing guesses:
 *  - the dump: once the snapshot session holds its ACCESS SHARE locks, a request for ACCESS
 *    EXCLUSIVE on a small table queues behind them, and the COPY of that table (small tables come
 *    last) queues behind the request, while the large table's parts are published;
 *  - the restore: a CHECK constraint calls a function that sleeps while a session named
 *    `parts-kill-gate` is connected, so loading one row of the gated table waits in the scratch database.
 */
import { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { auditLogOf } from '../../src/audit/audit-log';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { keyringFor } from '../../src/crypto/keys';
import { waitFor } from '../../src/infra/net';
import { stopProcess } from '../../src/infra/server-process';
import { partObjectKeyOf } from '../../src/parts/parts-of';
import { pgClientConfig } from '../../src/postgres/connection';
import { connectTemporal } from '../../src/temporal/client';
import { dataConverterFor } from '../../src/temporal/data-converter';
import { BACKUP_WORKFLOW_TYPE, RESTORE_WORKFLOW_TYPE, type BackupWorkflowResult, type RestoreWorkflowResult } from '../../workflows/definitions';
import { query, testConfig, type TestSetup } from '../harness/fixtures';
import { contentOf } from '../harness/compare';
import { contentKey, createPartsDatabase, everythingIn, PART_BYTES, PARTS_ENV, scratchDatabases, type PartsDatabase } from '../harness/parts-fixture';
import { testServers, type TestServers } from '../harness/servers';

const root = path.resolve(__dirname, '..', '..');
const GATE = 'parts-kill-gate';

/** A real `lifeline worker` process, so that it can really be killed. Its configuration is all in env. */
function startWorker(setup: TestSetup, workers: ChildProcess[]): ChildProcess {
  const worker = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'worker'], {
    cwd: root,
    env: { ...process.env, ...setup.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  workers.push(worker);
  return worker;
}

async function kill(worker: ChildProcess): Promise<void> {
  const exited = new Promise((r) => worker.once('exit', r));
  worker.kill('SIGKILL');
  await exited;
}

const files = (folder: string) => readdirSync(folder).sort();
const temporary = (folder: string) => files(folder).filter((f) => f.endsWith('.partial'));

/** Attempts after the first of each activity type in a workflow's history. */
async function retriedActivities(client: Client, workflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, string>();
  const retried: string[] = [];
  for (const e of history.events ?? []) {
    if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '?');
    const started = e.activityTaskStartedEventAttributes;
    if (started && started.attempt! > 1) retried.push(scheduled.get(String(started.scheduledEventId)) ?? '?');
  }
  return retried;
}

describe('a worker killed in the middle of a parts backup or restore', { concurrency: true }, () => {
  let servers: TestServers;
  let client: Client;
  const workers: ChildProcess[] = [];
  const lockers: pg.Client[] = [];

  before(async () => {
    servers = await testServers();
    client = new Client({ connection: await connectTemporal(servers.temporalAddress) });
  });

  after(async () => {
    for (const l of lockers) await l.end().catch(() => undefined);
    for (const w of workers) await stopProcess(w, 2000);
    await client?.connection.close();
  });

  /** The connection's client with the payload codec of one test's configuration (its worker processes' keys). */
  const codecClient = (setup: TestSetup) => new Client({ connection: client.connection, dataConverter: dataConverterFor(setup.config) });

  const configFor = (label: string, dbs: Array<{ name: string; url: string }>) =>
    testConfig(
      servers,
      label,
      dbs.map((d) => ({ ...d, production: false, allowForceRestore: true })),
      { env: { ...PARTS_ENV } },
    );

  it('in the middle of a parallel dump: the backup completes once, its parts all listed and verified, nothing else left', { timeout: 150_000 }, async () => {
    const source: PartsDatabase = await createPartsDatabase(servers, 'pk_dump', { bigTableBytes: 10 * PART_BYTES });
    const setup = await configFor('parts-kill-dump', [{ name: 'pk_dump', url: source.url }]);
    const client = codecClient(setup);
    const folder = path.join(setup.env.BACKUP_DIR!, 'pk_dump');
    const first = startWorker(setup, workers);
    const handle = await client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `pk-dump-${Date.now()}`,
      args: [{ database: 'pk_dump' }],
    });

    // As soon as the dump's snapshot session holds its locks, queue ACCESS EXCLUSIVE on a small table
    // (polled on the locker's own session: a new connection per look would be too slow).
    const locked = 'ledger.documents';
    const locker = new pg.Client(pgClientConfig(source.adminUrl));
    await locker.connect();
    locker.on('error', () => undefined); // ended below with pg_terminate_backend
    lockers.push(locker);
    const lockerPid = (await locker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { rows } = await locker.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND relation = '${locked}'::regclass AND mode = 'AccessShareLock' AND granted`,
      );
      if (rows[0]!.n > 0) break;
      if (Date.now() > deadline) throw new Error('the dump never locked the tables');
      await new Promise((r) => setTimeout(r, 2));
    }
    await locker.query(`BEGIN; SET LOCAL lock_timeout = '120s'`);
    const lockRequest = locker.query(`LOCK TABLE ${locked} IN ACCESS EXCLUSIVE MODE`).catch((err: Error) => err);

    await waitFor(
      'a part published while the COPY of the locked table waits',
      async () => {
        const [row] = await query<{ n: number }>(
          source.adminUrl,
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'pk_dump' AND pid <> ${lockerPid} AND wait_event_type = 'Lock' AND query LIKE 'COPY%documents%'`,
        );
        return row!.n > 0 && files(folder).some((f) => f.includes('.part.t'));
      },
      60_000,
    );
    await kill(first);
    // What the dead worker left: parts published, at least one still temporary, no manifest.
    const left = files(folder);
    assert.ok(left.some((f) => /\.part\.t\d+-\d{4}\./.test(f) && !f.endsWith('.partial')), `a part was published: ${left.join(', ')}`);
    assert.ok(temporary(folder).length > 0, `a part was being written: ${left.join(', ')}`);
    assert.ok(!left.some((f) => f.endsWith('.manifest.json')));

    startWorker(setup, workers);
    await servers.cluster.sql(`SELECT pg_terminate_backend(${lockerPid})`);
    await lockRequest;
    const result = (await handle.result()) as BackupWorkflowResult;

    assert.ok((await retriedActivities(client, handle.workflowId)).includes('dumpDatabase'), 'the dump ran again on the new worker');
    const db = setup.config.databases[0]!;
    const manifests = await catalogFor(db).list('pk_dump');
    assert.deepEqual(manifests.map((m) => m.id), [result.backupId], 'one backup');
    const manifest = manifests[0]!;
    const listed = manifest.parts!.map((p) => path.basename(partObjectKeyOf(manifest, p)));
    assert.deepEqual(files(folder), [...listed, `${manifest.id}.manifest.json`].sort(), 'the listed parts and the manifest, nothing temporary or orphaned');
    await verifyBackup(localStorageFor(db), manifest, keyringFor(setup.config));
    // Every row counted once: nothing of the killed attempt's parts is counted again.
    const atBackup = await contentOf(source.adminUrl);
    const tables = manifest.tables.filter((t) => t.kind === 'table');
    assert.equal(tables.length, Object.keys(atBackup).length - 1);
    for (const t of tables) assert.equal(t.rows, atBackup[contentKey([t.schema, t.name])]?.rows, `${t.schema}.${t.name}`);
  });

  it('in the middle of a parallel full restore: the restore completes once, every row in the target, no scratch database left', { timeout: 150_000 }, async () => {
    const source = await createPartsDatabase(servers, 'pk_rest');
    // The gate: loading row 1 of public.gated sleeps while a session named GATE is connected.
    await query(
      source.url,
      `CREATE FUNCTION public.gate(v int) RETURNS boolean LANGUAGE plpgsql AS $f$
       BEGIN
         IF v = 1 THEN
           WHILE EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity WHERE application_name = '${GATE}') LOOP
             PERFORM pg_catalog.pg_sleep(0.05);
           END LOOP;
         END IF;
         RETURN true;
       END $f$;
       CREATE TABLE public.gated (id int PRIMARY KEY CHECK (public.gate(id)), v text);
       INSERT INTO public.gated SELECT g, 'gated ' || g FROM generate_series(1, 100) g;`,
    );
    const copyUrl = new URL(source.url);
    copyUrl.pathname = '/pk_rest_copy';
    const setup = await configFor('parts-kill-restore', [
      { name: 'pk_rest', url: source.url },
      { name: 'pk_rest_copy', url: copyUrl.toString() },
    ]);
    const client = codecClient(setup);
    const doomed = startWorker(setup, workers);
    const backup = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `pk-rest-backup-${Date.now()}`,
      args: [{ database: 'pk_rest' }],
    })) as BackupWorkflowResult;
    const atBackup = await everythingIn(source.adminUrl);

    const gate = new pg.Client({ ...pgClientConfig(source.url), application_name: GATE });
    await gate.connect();
    lockers.push(gate);
    const handle = await client.workflow.start(RESTORE_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `pk-rest-restore-${Date.now()}`,
      args: [{ database: 'pk_rest', requestedBy: 'test', target: 'pk_rest_copy', backup: backup.backupId, force: true }],
    });
    await waitFor(
      'the restore to load the gated table in its scratch database',
      async () =>
        (await servers.cluster.sql<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname LIKE 'pk\\_rest\\_copy\\_restore\\_%' AND wait_event = 'PgSleep'`,
        ))[0]!.n > 0,
      90_000,
    );
    const [scratch] = await scratchDatabases(servers, 'pk_rest_copy');
    assert.ok(scratch, 'the scratch database exists');
    const loadedBefore = await query<{ n: number }>(servers.cluster.adminUrl(scratch), `SELECT count(*)::int AS n FROM ledger.accounts`);
    assert.equal(loadedBefore[0]!.n, 2000, 'other tables were loaded before the gated one');

    await kill(doomed);
    assert.ok((await scratchDatabases(servers, 'pk_rest_copy')).length > 0, 'the dead worker left its scratch database');
    await gate.end();
    startWorker(setup, workers);
    const result = (await handle.result()) as RestoreWorkflowResult;

    assert.equal(result.outcome, 'restored');
    assert.ok((await retriedActivities(client, handle.workflowId)).includes('restoreIntoScratch'), 'the restore ran again on the new worker');
    assert.deepEqual(await everythingIn(servers.cluster.adminUrl('pk_rest_copy')), atBackup, 'every row, large object, sequence and matview');
    assert.deepEqual(await scratchDatabases(servers, 'pk_rest_copy'), [], 'no scratch database left');
    const audited = (await auditLogOf(setup.config).entries()).filter((e) => e.details?.workflowId === handle.workflowId && e.action === 'restore');
    assert.equal(audited.length, 1, 'one restore recorded');
  });
});
