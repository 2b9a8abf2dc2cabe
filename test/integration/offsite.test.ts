import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { catalogFor, storageNamed } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { Catalog } from '../../src/catalog/catalog';
import { keyringFor } from '../../src/crypto/keys';
import { rootCauseMessage } from '../../src/errors';
import { isParts } from '../../src/parts/parts-of';
import { pgTool } from '../../src/postgres/binaries';
import { S3Storage } from '../../src/storage/s3';
import {
  BACKUP_WORKFLOW_TYPE,
  REPLICATION_WORKFLOW_TYPE,
  RESTORE_WORKFLOW_TYPE,
  type BackupWorkflowResult,
  type ReplicationWorkflowResult,
  type RestoreWorkflowInput,
  type RestoreWorkflowResult,
} from '../../workflows/definitions';
import { contentOf } from '../harness/compare';
import { query, s3Destination, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { assertNotStoredByTemporal } from '../harness/secrets';
import { runWorker, testClient } from '../harness/worker';
import { testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

describe('offsite replication to S3 (versitygw) and restores from it', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let backup: BackupWorkflowResult;
  let atBackup: Awaited<ReturnType<typeof contentOf>>;
  const admin = (db = 'os_source') => servers.cluster.adminUrl(db);
  const unique = () => `${Date.now()}-${Math.random().toString(16).slice(2, 6)}`;
  const execute = <R>(type: string, input: unknown, workflowId = `os-${type}-${unique()}`) =>
    client.workflow.execute(type, { taskQueue: setup.config.temporal.taskQueue, workflowId, args: [input] }) as Promise<R>;
  const record = async (workflowId: string, file: string) => {
    if (!process.env.LIFELINE_RECORD_HISTORY) return;
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    writeFileSync(path.join(__dirname, '..', 'replay', 'histories', file), historyToJSON(history));
  };
  const restore = (input: Partial<RestoreWorkflowInput>) =>
    execute<RestoreWorkflowResult>(RESTORE_WORKFLOW_TYPE, { database: 'os_source', requestedBy: 'test', force: true, ...input });
  /** The CLI as an operator on a new machine runs it: no Temporal server reachable. */
  const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], {
      cwd: root,
      env: { ...process.env, ...setup.env, TEMPORAL_ADDRESS: '127.0.0.1:1', ...extraEnv },
      maxBuffer: 64 << 20,
      encoding: 'buffer',
    });

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'os_source');
    await servers.cluster.sql('ALTER ROLE os_source_owner CREATEDB');
    await servers.cluster.sql('GRANT pg_signal_backend TO os_source_owner');
    setup = await testConfig(servers, 'offsite', [{ name: 'os_source', url: source.url, production: false, allowForceRestore: true }], {
      destinations: [
        await s3Destination(servers.s3, 'offsite', 'os-offsite', { prefix: 'moneyflow' }),
        // The archive tier: another bucket, another storage class, objects under a retention lock.
        await s3Destination(servers.s3, 'archive', 'os-archive', { storageClass: 'STANDARD_IA', objectLock: { mode: 'GOVERNANCE', days: 1 } }),
      ],
    });
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
    atBackup = await contentOf(admin());
    const backupWorkflowId = `os-backup-${unique()}`;
    backup = await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, { database: 'os_source' }, backupWorkflowId);
    await record(backupWorkflowId, 'backup-replicated.json');
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('lands a backup in the local repository and both S3 destinations, each copy matching the checksum', async () => {
    assert.deepEqual(
      backup.replication?.map((r) => [r.destination, r.status]),
      [['offsite', 'replicated'], ['archive', 'replicated']],
    );
    const db = setup.config.databases[0]!;
    for (const name of ['local', 'offsite', 'archive']) {
      const storage = storageNamed(setup.config, db, name);
      const [manifest] = await new Catalog(storage).list('os_source');
      assert.equal(manifest?.id, backup.backupId, `${name} catalogues the backup`);
      const hash = createHash('sha256');
      for await (const chunk of await storage.read(manifest!.object.key)) hash.update(chunk as Buffer);
      assert.equal(hash.digest('hex'), backup.sha256, `${name} copy has the backup's SHA-256`);
    }
    // On the server's disk, under the configured prefix; no unfinished multipart uploads anywhere.
    assert.ok(existsSync(path.join(servers.s3.dataDir, 'os-offsite', 'moneyflow', 'os_source', `${backup.backupId}.manifest.json`)));
    // The S3 secret key stays in the worker's environment; Temporal only ever saw a variable's name.
    assertNotStoredByTemporal(servers.temporalDbFile, servers.s3.secretAccessKey);
    for (const name of ['offsite', 'archive']) {
      const s3 = storageNamed(setup.config, db, name) as S3Storage;
      const uploads = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: s3.config.bucket }));
      assert.equal(uploads.Uploads?.length ?? 0, 0, `${name} has no orphaned multipart uploads`);
    }
  });

  it('restores from offsite into an identical database', async () => {
    await servers.cluster.sql('DELETE FROM public.transactions WHERE id % 2 = 0', 'os_source');
    const result = await restore({ storage: 'offsite', backup: backup.backupId });
    assert.equal(result.outcome, 'restored');
    assert.deepEqual(await contentOf(admin()), atBackup);
  });

  it('lists and decrypts an offsite backup with no Temporal server, and pg_restore recovers the database', async () => {
    const { stdout } = await cli(['list', '--storage', 'offsite']);
    assert.match(stdout.toString(), new RegExp(backup.backupId));
    const offsite = storageNamed(setup.config, setup.config.databases[0]!, 'offsite');
    const manifest = await new Catalog(offsite).get(backup.backupId);
    const url = offsite.describe(manifest.object.key);
    assert.match(url, /^s3:\/\/os-offsite\/moneyflow\//);
    const out = path.join(mkdtempSync(path.join(tmpdir(), 'lifeline-s3-decrypt-')), 'recovered.dump');
    // Only the endpoint and credentials, as on an empty machine: no destinations configured.
    writeFileSync(path.join(setup.dir, 'empty.json'), JSON.stringify({}));
    await cli(['decrypt', url, '-o', out], {
      LIFELINE_CONFIG: path.join(setup.dir, 'empty.json'),
      BACKUP_S3_ENDPOINT: servers.s3.endpoint,
      BACKUP_S3_ACCESS_KEY_ID: servers.s3.accessKeyId,
      BACKUP_S3_SECRET_ACCESS_KEY: servers.s3.secretAccessKey,
    });
    // One stream decrypts to pg_dump's own bytes; a parts backup to an archive assembled from its parts (rawSha256 is its archive part's).
    if (!isParts(manifest)) assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), manifest.rawSha256);
    await servers.cluster.sql('DROP DATABASE IF EXISTS os_recovered');
    await servers.cluster.sql('CREATE DATABASE os_recovered');
    await run(pgTool('pg_restore'), ['--no-owner', '--exit-on-error', `--dbname=${admin('os_recovered')}`, out]);
    assert.deepEqual(await contentOf(admin('os_recovered')), atBackup);
  });

  it('copies what a destination lacks with replicate --missing, and nothing twice', async () => {
    const second = await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, { database: 'os_source' });
    // The second backup's offsite copy goes missing (as if that upload had never happened).
    const offsite = storageNamed(setup.config, setup.config.databases[0]!, 'offsite');
    await offsite.delete(`os_source/${second.backupId}.manifest.json`);
    const replicationWorkflowId = `os-replicate-${unique()}`;
    const result = await execute<ReplicationWorkflowResult>(REPLICATION_WORKFLOW_TYPE, { database: 'os_source', missing: true }, replicationWorkflowId);
    await record(replicationWorkflowId, 'replication-missing.json');
    assert.equal(result.failed, 0, JSON.stringify(result.outcomes));
    assert.deepEqual(
      result.outcomes.filter((o) => o.backupId === second.backupId).map((o) => [o.destination, o.status]),
      [['offsite', 'replicated']],
    );
    // The pre-restore snapshot the restore above took was only local: it is copied too.
    assert.ok(result.outcomes.some((o) => o.backupId.startsWith('os_source_prerestore_') && o.status === 'replicated'));
    const ids = (await new Catalog(offsite).list('os_source')).map((m) => m.id);
    assert.deepEqual(ids.filter((id) => id.includes('_backup_')).sort(), [backup.backupId, second.backupId].sort());
    const again = await execute<ReplicationWorkflowResult>(REPLICATION_WORKFLOW_TYPE, { database: 'os_source', missing: true });
    assert.equal(again.outcomes.length, 0);
  });

  it('catches a corrupted offsite object in verification and refuses to restore from it', async () => {
    const file = path.join(servers.s3.dataDir, 'os-offsite', 'moneyflow', 'os_source', `${backup.backupId}.dump.zst.enc`);
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(file, bytes);
    const db = setup.config.databases[0]!;
    const offsite = storageNamed(setup.config, db, 'offsite');
    const manifest = await new Catalog(offsite).get(backup.backupId);
    await assert.rejects(verifyBackup(offsite, manifest, keyringFor(setup.config)), /IntegrityError|authentication|differs/);
    const before = await contentOf(admin());
    await assert.rejects(restore({ storage: 'offsite', backup: backup.backupId }), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      // The damaged object is the archive part of a parts-format backup: named, with where it is.
      assert.match(rootCauseMessage(err), /^part archive of backup os_source_backup_\d{8}_\d{6} \(s3:\/\/os-offsite\/moneyflow\/os_source\/.*\.dump\.zst\.enc\): chunk \d+ fails authentication/);
      return true;
    });
    assert.deepEqual(await contentOf(admin()), before, 'the target is untouched');
    // The local copy is still good.
    const local = (await catalogFor(db).get(backup.backupId));
    await verifyBackup(storageNamed(setup.config, db, 'local'), local, keyringFor(setup.config));
  });

  it('streams a write of unknown content (lib-storage) visible only once published, never over an object', async () => {
    const offsite = storageNamed(setup.config, setup.config.databases[0]!, 'offsite') as S3Storage;
    const body = Buffer.alloc(20 * 1024 * 1024, 7); // three 8 MiB parts
    const writer = await offsite.createWriter('streamed/object', { expectedBytes: body.length });
    writer.stream.end(body);
    await writer.publish();
    assert.equal((await offsite.stat('streamed/object'))?.size, body.length);
    const second = await offsite.createWriter('streamed/object', { expectedBytes: 10 });
    second.stream.end(Buffer.from('replacement'));
    await assert.rejects(second.publish(), /already exists; refusing to overwrite it/);
    const abandoned = await offsite.createWriter('streamed/abandoned', { expectedBytes: body.length });
    abandoned.stream.write(body.subarray(0, 9 * 1024 * 1024));
    await abandoned.abort();
    assert.equal(await offsite.stat('streamed/abandoned'), undefined);
    const uploads = await offsite.client.send(new ListMultipartUploadsCommand({ Bucket: offsite.config.bucket }));
    assert.equal(uploads.Uploads?.length ?? 0, 0, 'the aborted upload left no parts');
    await offsite.delete('streamed/object');
  });

  it('refuses an unknown destination name with the configured ones', async () => {
    await assert.rejects(restore({ storage: 'nowhere' }), (err: unknown) => {
      assert.match(rootCauseMessage(err), /unknown destination "nowhere" \(configured: offsite, archive\)/);
      return true;
    });
    const rows = await query<{ n: string }>(admin(), 'SELECT count(*) AS n FROM public.users');
    assert.ok(Number(rows[0]!.n) > 0);
  });
});
