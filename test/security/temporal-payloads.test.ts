/**
 * What Temporal keeps of a backup, a restore and a drill: with Lifeline's payload codec, the dev
 * server's SQLite file (and its WAL) holds none of the backup's table names, row counts, repository
 * path or wrapped data key in clear; the same runs without the codec put every one of them there.
 * Search attributes stay plain (the Web UI filters on them), and a plain JSON input given to
 * `temporal workflow start --input` still starts a backup (decode passes it through).
 */
import { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { catalogFor } from '../../src/backup/repository';
import { applySchedules } from '../../src/temporal/schedules';
import type { LifelineConfig } from '../../src/config/config';
import { freePort, waitFor } from '../../src/infra/net';
import { startTemporalDevServer, type DevServer } from '../../src/infra/temporal-dev-server';
import { ensureTemporalCli } from '../../src/infra/tools';
import { connectTemporal } from '../../src/temporal/client';
import { dataConverterFor } from '../../src/temporal/data-converter';
import { createWorker } from '../../src/temporal/worker';
import {
  BACKUP_WORKFLOW_TYPE,
  BackupDatabase,
  DRILL_WORKFLOW_TYPE,
  RESTORE_WORKFLOW_TYPE,
  type BackupWorkflowResult,
  type DrillReport,
} from '../../workflows/definitions';
import { s3Destination, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { newWorkDir, testServers, type TestServers } from '../harness/servers';
import { decodedPayloadsOf } from '../harness/worker';
import { foundInTemporal } from '../harness/secrets';

const run = promisify(execFile);
/** A table whose name and row count appear nowhere else: in the manifest, the drill's checks, and (without the codec) Temporal. */
const TABLE = 'payroll_adjustments_q7x';
const ROWS = 4273;

interface Leak {
  what: string;
  needle: string;
}

/** Which needles the dev server's files hold, each named with its value (a failure shows what leaked). */
function leaksIn(dbFile: string, leaks: Leak[]): string[] {
  return foundInTemporal(dbFile, leaks.map(({ what, needle }) => ({ what: `${what} (${JSON.stringify(needle)})`, needle })));
}

describe('Temporal stores only encrypted payloads (backup, restore and drill through the real workflows)', () => {
  let servers: TestServers;
  let cliPath: string;
  const stops: Array<() => Promise<unknown>> = [];

  /** A dev server of this file's own, so its SQLite file holds only these runs. */
  const ownServer = async (label: string): Promise<{ server: DevServer; dbFile: string }> => {
    const dir = newWorkDir(label);
    const dbFile = path.join(dir, 'temporal.db');
    const server = await startTemporalDevServer({ cliPath, dbFile, logFile: path.join(dir, 'server.log'), port: await freePort() });
    stops.push(() => server.stop());
    return { server, dbFile };
  };

  /** A configuration on `server`: the source with its distinctive table, a copy to restore into, an offsite destination to drill from. */
  const configOn = async (server: DevServer, label: string, source: string, env: Record<string, string> = {}): Promise<TestSetup> => {
    const seeded = await seededDatabase(servers, source);
    const owner = `${source}_owner`;
    await servers.cluster.sql(`CREATE TABLE public.${TABLE} AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, ${ROWS}) g`, source);
    await servers.cluster.sql(`ALTER TABLE public.${TABLE} OWNER TO ${owner}`, source);
    // What a restoring role needs (see README), and a drill's scratch database.
    await servers.cluster.sql(`ALTER ROLE ${owner} CREATEDB`);
    await servers.cluster.sql(`GRANT pg_signal_backend TO ${owner}`);
    await servers.cluster.sql(`GRANT SET ON PARAMETER session_replication_role TO ${owner}`);
    const copy = new URL(seeded.url);
    copy.pathname = `/${source}_copy`;
    return testConfig(
      servers,
      label,
      [
        { name: source, url: seeded.url, production: false, allowForceRestore: true, drill: { criticalTables: [`public.${TABLE}`], sql: [`SELECT count(*) = ${ROWS} FROM public.${TABLE}`] } },
        { name: `${source}_copy`, url: copy.toString(), production: false, allowForceRestore: true },
      ],
      { destinations: [await s3Destination(servers.s3, 'offsite', `${label}-offsite`)], env: { TEMPORAL_ADDRESS: server.address, BACKUP_NOTIFY_SUCCESS: 'false', ...env } },
    );
  };

  /** Backup, forced restore into the copy, drill from the offsite copy: what each leaves for Temporal to store. */
  const backupRestoreDrill = async (client: Client, config: LifelineConfig, source: string): Promise<{ backup: BackupWorkflowResult; wrappedKey: string }> => {
    const taskQueue = config.temporal.taskQueue;
    const backup = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: `tp-backup-${Date.now()}`,
      args: [{ database: source }],
      typedSearchAttributes: [{ key: BackupDatabase, value: source }],
    })) as BackupWorkflowResult;
    await client.workflow.execute(RESTORE_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: `tp-restore-${Date.now()}`,
      args: [{ database: source, requestedBy: 'test', target: `${source}_copy`, backup: backup.backupId, force: true }],
    });
    const copied = await servers.cluster.sql<{ n: string }>(`SELECT count(*) AS n FROM public.${TABLE}`, `${source}_copy`);
    assert.equal(Number(copied[0]!.n), ROWS, 'the restore put the table in place');
    const report = (await client.workflow.execute(DRILL_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: `tp-drill-${Date.now()}`,
      args: [{ database: source, kind: 'manual', requestedBy: 'test' }],
    })) as DrillReport;
    assert.equal(report.passed, true, JSON.stringify(report));
    const manifest = await catalogFor(config.databases.find((d) => d.name === source)!).get(backup.backupId);
    return { backup, wrappedKey: manifest.encryption.wrappedKey };
  };

  const leaksOf = (config: LifelineConfig, wrappedKey: string): Leak[] => [
    { what: 'a table name', needle: TABLE },
    { what: 'a row count', needle: `"rows":${ROWS}` },
    { what: 'the repository path', needle: config.backupDir },
    { what: 'the wrapped data key', needle: wrappedKey },
  ];

  before(async () => {
    servers = await testServers();
    cliPath = await ensureTemporalCli();
  });

  after(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  });

  it('with the codec: none of them in the SQLite file after a backup, a restore and a drill; search attributes stay readable; plain CLI input still works', { timeout: 300_000 }, async () => {
    const { server, dbFile } = await ownServer('tp-coded');
    const setup = await configOn(server, 'tp-coded', 'tp_coded');
    const client = new Client({ connection: await connectTemporal(server.address), dataConverter: dataConverterFor(setup.config) });
    stops.push(() => client.connection.close());
    const worker = await createWorker(setup.config);
    const running = worker.run();
    try {
      const { wrappedKey } = await backupRestoreDrill(client, setup.config, 'tp_coded');

      // `temporal workflow start --input` sends plain JSON: the worker's codec passes it through.
      const workflowId = `tp-cli-${Date.now()}`;
      await run(cliPath, ['workflow', 'start', '--address', server.address, '--task-queue', setup.config.temporal.taskQueue, '--type', BACKUP_WORKFLOW_TYPE, '--workflow-id', workflowId, '--input', '{"database":"tp_coded"}']);
      const fromCli = (await client.workflow.getHandle(workflowId).result()) as BackupWorkflowResult;
      assert.match(fromCli.backupId, /^tp_coded_backup_/);

      // Search attributes are plain: the Web UI's filters still find the runs.
      assert.ok((await client.workflow.count(`BackupDatabase = 'tp_coded'`)).count >= 2);

      // Through the codec, the results read as usual (the client decrypts them).
      assert.match(fromCli.location, new RegExp(setup.config.backupDir.replace(/[/.]/g, '\\$&')));
      assert.deepEqual(leaksIn(dbFile, leaksOf(setup.config, wrappedKey)), []);
    } finally {
      worker.shutdown();
      await running;
    }
  });

  it('failures (a step failing on a locked table, then its workflow) and schedules leave no table name in the SQLite file', { timeout: 300_000 }, async () => {
    const { server, dbFile } = await ownServer('tp-fail');
    const setup = await configOn(server, 'tp-fail', 'tp_fail', { BACKUP_LOCK_WAIT_TIMEOUT: '1s' });
    const client = new Client({ connection: await connectTemporal(server.address), dataConverter: dataConverterFor(setup.config) });
    stops.push(() => client.connection.close());
    const worker = await createWorker(setup.config);
    const running = worker.run();
    const locker = new pg.Client({ connectionString: servers.cluster.adminUrl('tp_fail') });
    await locker.connect();
    try {
      const taskQueue = setup.config.temporal.taskQueue;
      await applySchedules(client, setup.config);
      // A step fails, its message naming the locked table: Temporal keeps it as the activity's last failure,
      // then (retries spent) as the workflow's failure.
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE public.${TABLE} IN ACCESS EXCLUSIVE MODE`);
      const locked = await client.workflow.start(BACKUP_WORKFLOW_TYPE, { taskQueue, workflowId: `tp-locked-${Date.now()}`, args: [{ database: 'tp_fail' }] });
      let lastFailure = '';
      await waitFor(
        'the dump to fail on the lock',
        async () => {
          const pending = (await locked.describe()).raw.pendingActivities ?? [];
          const failure = pending.find((a) => a.lastFailure)?.lastFailure;
          if (!failure) return false;
          lastFailure = [failure.message ?? '', ...(await decodedPayloadsOf(client, failure))].join('\n');
          return true;
        },
        90_000,
      );
      assert.match(lastFailure, new RegExp(TABLE), 'the failure names the table (through the codec)');
      await assert.rejects(locked.result(), (err: unknown) => {
        const messages: string[] = [];
        for (let e: Error | undefined = err as Error; e; e = e.cause instanceof Error ? e.cause : undefined) messages.push(e.message);
        assert.match(messages.join('\n'), new RegExp(TABLE));
        return true;
      });
      await locker.query('ROLLBACK');
      assert.deepEqual(leaksIn(dbFile, [{ what: 'a table name', needle: TABLE }]), []);
    } finally {
      await locker.end().catch(() => undefined);
      worker.shutdown();
      await running;
    }
  });

  it('without the codec (the attack this guards against): the same runs put every one of them in the SQLite file', { timeout: 300_000 }, async () => {
    const { server, dbFile } = await ownServer('tp-plain');
    const setup = await configOn(server, 'tp-plain', 'tp_plain');
    const client = new Client({ connection: await connectTemporal(server.address) });
    stops.push(() => client.connection.close());
    const worker = await createWorker(setup.config, { dataConverter: {} });
    const running = worker.run();
    try {
      const { wrappedKey } = await backupRestoreDrill(client, setup.config, 'tp_plain');
      const leaks = leaksOf(setup.config, wrappedKey);
      const found = leaksIn(dbFile, leaks);
      for (const { what } of leaks) assert.ok(found.some((f) => f.startsWith(what)), `${what} not found in clear without the codec: ${found.join('; ')}`);
    } finally {
      worker.shutdown();
      await running;
    }
  });
});
