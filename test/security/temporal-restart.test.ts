import { Client, Connection } from '@temporalio/client';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { storedObjects } from '../../src/parts/parts-of';
import { keyringFor } from '../../src/crypto/keys';
import { freePort, waitFor } from '../../src/infra/net';
import { startTemporalDevServer, type DevServer } from '../../src/infra/temporal-dev-server';
import { ensureTemporalCli } from '../../src/infra/tools';
import { dataConverterFor } from '../../src/temporal/data-converter';
import {
  approveUpdate,
  BACKUP_WORKFLOW_TYPE,
  RESTORE_WORKFLOW_TYPE,
  restoreStateQuery,
  type BackupWorkflowResult,
  type RestoreWorkflowResult,
} from '../../workflows/definitions';
import { contentOf } from '../harness/compare';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { newWorkDir, testServers, type TestServers } from '../harness/servers';
import { runWorker } from '../harness/worker';

const OUTAGE_MS = Number(process.env.LIFELINE_TEST_OUTAGE_MS ?? 5000);

/**
 * A Temporal dev server of this file's own (the shared one serves other files at the same time),
 * stopped and started again on the same SQLite file and port while workflows are running.
 */
describe('the Temporal server restarted while workflows run', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let temporal: DevServer;
  let restart: () => Promise<void>;
  let stopWorker: (() => Promise<void>) | undefined;
  let locker: pg.Client | undefined;
  let backup: BackupWorkflowResult;

  before(async () => {
    servers = await testServers();
    const dir = newWorkDir('temporal-restart');
    const options = { cliPath: await ensureTemporalCli(), dbFile: path.join(dir, 'temporal.db'), logFile: path.join(dir, 'server.log'), port: await freePort() };
    temporal = await startTemporalDevServer(options);
    restart = async () => {
      const pid = temporal.process.pid;
      await temporal.stop();
      // Down long enough that every poll and heartbeat of the worker fails in the meantime.
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      temporal = await startTemporalDevServer(options);
      assert.notEqual(temporal.process.pid, pid, 'a new server process');
    };
    const source = await seededDatabase(servers, 'tr_source');
    // What a restoring role needs (see README).
    await servers.cluster.sql(`ALTER ROLE tr_source_owner CREATEDB`);
    await servers.cluster.sql(`GRANT pg_signal_backend TO tr_source_owner`);
    await servers.cluster.sql(`GRANT SET ON PARAMETER session_replication_role TO tr_source_owner`);
    setup = await testConfig(servers, 'temporal-restart', [{ name: 'tr_source', url: source.url, production: false }], {
      env: { TEMPORAL_ADDRESS: temporal.address },
    });
    client = new Client({ connection: await Connection.connect({ address: temporal.address }), dataConverter: dataConverterFor(setup.config) });
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    await locker?.end().catch(() => undefined);
    await stopWorker?.();
    await client?.connection.close();
    await temporal?.stop();
  });

  it('a backup whose dump is under way when the server restarts finishes VERIFIED, catalogued once', { timeout: 240_000 }, async () => {
    // pg_dump waits on this lock until the server is back.
    locker = new pg.Client({ connectionString: servers.cluster.adminUrl('tr_source') });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE');
    const handle = await client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `tr-backup-${Date.now()}`,
      args: [{ database: 'tr_source' }],
    });
    const folder = path.join(setup.env.BACKUP_DIR!, 'tr_source');
    await waitFor('the dump to wait on the lock', async () => {
      const [row] = await servers.cluster.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'tr_source' AND wait_event_type = 'Lock'`);
      return row!.n >= 1;
    }, 60_000);

    await restart();
    await locker.query('COMMIT');
    await locker.end();
    locker = undefined;

    backup = (await handle.result()) as BackupWorkflowResult;
    const attributes = (await handle.describe()).typedSearchAttributes;
    assert.equal(attributes.getAll().find((a) => a.key.name === 'BackupStatus')?.value, 'VERIFIED');
    const db = setup.config.databases[0]!;
    const manifests = await catalogFor(db).list('tr_source');
    assert.deepEqual(manifests.map((m) => m.id), [backup.backupId]);
    await verifyBackup(localStorageFor(db), manifests[0]!, keyringFor(setup.config));
    // Exactly the backup's own objects (every part its manifest lists) and its manifest: nothing half-written, nothing twice.
    const objects = storedObjects(manifests[0]!).map((o) => path.basename(o.key));
    assert.deepEqual(readdirSync(folder).sort(), [...objects, `${backup.backupId}.manifest.json`].sort());
  });

  it('a restore waiting for approval when the server restarts is approved afterwards and restores', { timeout: 240_000 }, async () => {
    assert.ok(backup, 'the backup of the test before');
    const admin = servers.cluster.adminUrl('tr_source');
    const atBackup = await contentOf(admin);
    await servers.cluster.sql(`DELETE FROM public.budgets`, 'tr_source');
    const handle = await client.workflow.start(RESTORE_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `tr-restore-${Date.now()}`,
      args: [{ database: 'tr_source', backup: backup.backupId, requestedBy: 'test', approvalTimeout: '1h' }],
    });
    await waitFor('the restore to wait for approval', async () => (await handle.query(restoreStateQuery)) === 'WAITING_APPROVAL', 90_000);

    await restart();
    await waitFor('the restore to answer queries again', async () => (await handle.query(restoreStateQuery).catch(() => undefined)) === 'WAITING_APPROVAL', 60_000);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', reason: 'after the restart' }] });
    const result = (await handle.result()) as RestoreWorkflowResult;
    assert.equal(result.outcome, 'restored');
    assert.deepEqual(await contentOf(admin), atBackup);
  });
});
