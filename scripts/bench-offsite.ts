/**
 * `npm run bench:offsite`: on the benchmark's ledger database (bench-seed.ts, seeded once), with a
 * local versitygw and local-kms:
 *   (a) upload of the encrypted backup with lib-storage's Upload (no checksums): the baseline
 *   (b) Lifeline's replication: resumable multipart, SHA-256 per part, read-back check, manifest last
 *   (c) key rotation over BENCH_BACKUPS (default 100) backups, local key file and KMS, as the
 *       keyRotationWorkflow runs it on a Temporal dev server (every backup in the local repository
 *       and in the S3 destination)
 * Prints wall times and MB/s of the stored object.
 */
import { CreateAliasCommand, CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateBucketCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Client } from '@temporalio/client';
import { createReadStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { catalogBackup } from '../src/backup/catalog-backup';
import { dumpToRepository } from '../src/backup/dump';
import { localStorageFor, storageNamed } from '../src/backup/repository';
import { verifyBackup } from '../src/backup/verify';
import { backupId } from '../src/catalog/naming';
import type { LifelineConfig } from '../src/config/config';
import { loadConfig } from '../src/config/load';
import { keyringFor } from '../src/crypto/keys';
import { createKeyFile } from '../src/crypto/keys/local-key-file';
import { startLocalKms } from '../src/infra/kms-server';
import { startLocalS3 } from '../src/infra/s3-server';
import { startTemporalDevServer } from '../src/infra/temporal-dev-server';
import { ensureLocalKms, ensureTemporalCli, ensureVersitygw } from '../src/infra/tools';
import { storedObjects } from '../src/parts/parts-of';
import { replicateBackup } from '../src/replication/replicate';
import { S3Storage } from '../src/storage/s3';
import { connectTemporal } from '../src/temporal/client';
import { dataConverterFor } from '../src/temporal/data-converter';
import { createWorker } from '../src/temporal/worker';
import { KEY_ROTATION_WORKFLOW_TYPE, type KeyRotationWorkflowResult } from '../workflows/definitions';
import { benchDatabase } from './bench-seed';

const root = path.resolve(__dirname, '..');
const MB = 1024 * 1024;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function backupsOf(config: LifelineConfig, count: number): Promise<void> {
  const db = config.databases[0]!;
  const base = Date.UTC(2026, 0, 1, 3);
  for (let i = 0; i < count; i++) {
    const record = await dumpToRepository(config, db, { backupId: backupId(db.name, new Date(base + i * 86_400_000)), type: 'full' });
    await catalogBackup(db, record, (await verifyBackup(localStorageFor(db), record, keyringFor(config))).verification, 'bench', keyringFor(config));
    await replicateBackup(config, db, record.id, 'offsite');
  }
}

async function main() {
  const count = Number(process.env.BENCH_BACKUPS ?? 100);
  const { cluster, name } = await benchDatabase(root);
  const work = mkdtempSync(path.join(tmpdir(), 'lifeline-bench-offsite-'));
  const s3 = await startLocalS3(await ensureVersitygw(console.log), path.join(work, 's3'));
  const kmsServer = await startLocalKms(await ensureLocalKms(console.log), path.join(work, 'kms'));
  const temporal = await startTemporalDevServer({ cliPath: await ensureTemporalCli(console.log), dbFile: path.join(work, 'temporal.db'), logFile: path.join(work, 'temporal.log') });
  // The worker reads destination credentials from its own environment.
  process.env.BACKUP_S3_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.BACKUP_S3_SECRET_ACCESS_KEY = s3.secretAccessKey;
  process.env.AWS_ACCESS_KEY_ID ??= 'bench';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';
  const keyFile = path.join(work, 'keys', 'master.key');
  await createKeyFile(keyFile);
  const env = (repo: string, database: string, extra: Record<string, string> = {}) => ({
    DATABASE_URL: cluster.adminUrl(database),
    BACKUP_DIR: path.join(work, repo),
    BACKUP_ENCRYPTION_KEY: keyFile,
    BACKUP_S3_BUCKET: 'bench-offsite',
    BACKUP_S3_PREFIX: repo,
    BACKUP_S3_ENDPOINT: s3.endpoint,
    BACKUP_S3_ACCESS_KEY_ID: s3.accessKeyId,
    BACKUP_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    BACKUP_KMS_ENDPOINT: kmsServer.endpoint,
    TEMPORAL_ADDRESS: temporal.address,
    LIFELINE_TASK_QUEUE: `bench-${repo}`,
    ...extra,
  });
  try {
    // ---- upload throughput ----
    const config = loadConfig({ cwd: work, env: env('big', name) });
    const db = config.databases[0]!;
    const offsite = storageNamed(config, db, 'offsite') as S3Storage;
    await offsite.client.send(new CreateBucketCommand({ Bucket: 'bench-offsite' }));
    const record = await dumpToRepository(config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
    const manifest = await catalogBackup(db, record, (await verifyBackup(localStorageFor(db), record, keyringFor(config))).verification, 'bench', keyringFor(config));
    const mb = manifest.sizes.storedBytes / MB;
    console.log(`Stored backup: ${mb.toFixed(1)} MiB in ${storedObjects(manifest).length} object(s) (${name})`);
    const objects = storedObjects(manifest);
    for (let run = 1; run <= 3; run++) {
      // Every stored object (one for a single-stream backup, one per part for parts-v1), one after the other.
      const a = await timed(async () => {
        for (const o of objects) {
          const Body = createReadStream(localStorageFor(db).describe(o.key));
          await new Upload({ client: offsite.client, queueSize: 4, partSize: 8 * MB, params: { Bucket: 'bench-offsite', Key: `plain/${run}/${o.key}`, Body } }).done();
        }
      });
      for (const o of objects) await offsite.client.send(new DeleteObjectCommand({ Bucket: 'bench-offsite', Key: `plain/${run}/${o.key}` }));
      let result: Awaited<ReturnType<typeof replicateBackup>> | undefined;
      const b = await timed(async () => (result = await replicateBackup(config, db, manifest.id, 'offsite')));
      if (result?.status !== 'replicated') throw new Error(`replication: ${result?.status}`);
      for (const key of [...objects.map((o) => o.key), `${db.name}/${manifest.id}.manifest.json`]) await offsite.delete(key);
      console.log(`run ${run}: (a) lib-storage Upload ${a.toFixed(1)} s = ${(mb / a).toFixed(0)} MiB/s   (b) Lifeline replication ${b.toFixed(1)} s = ${(mb / b).toFixed(0)} MiB/s (upload + read-back)`);
    }

    // ---- rotation over many backups ----
    await cluster.sql('DROP DATABASE IF EXISTS bench_small');
    await cluster.sql('CREATE DATABASE bench_small');
    await cluster.sql('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g', 'bench_small');
    const kms = new KMSClient({ endpoint: kmsServer.endpoint, region: 'us-east-1' });
    const key = await kms.send(new CreateKeyCommand({ Description: 'bench' }));
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/bench', TargetKeyId: key.KeyMetadata!.KeyId! }));
    const client = new Client({ connection: await connectTemporal(temporal.address) });
    for (const [label, extra] of [['local key file', {}], ['KMS', { BACKUP_KMS_KEY_ID: 'alias/bench' }]] as const) {
      const rotating = loadConfig({ cwd: work, env: env(`rotation-${label.replace(/\W/g, '')}`, 'bench_small', extra) });
      const made = await timed(() => backupsOf(rotating, count));
      const worker = await createWorker(rotating);
      const running = worker.run();
      let result: KeyRotationWorkflowResult | undefined;
      const seconds = await timed(async () => {
        const codecClient = new Client({ connection: client.connection, dataConverter: dataConverterFor(rotating) });
        result = (await codecClient.workflow.execute(KEY_ROTATION_WORKFLOW_TYPE, {
          taskQueue: rotating.temporal.taskQueue,
          workflowId: `bench-rotation-${Date.now()}`,
          args: [{ requestedBy: 'bench' }],
        })) as KeyRotationWorkflowResult;
      });
      worker.shutdown();
      await running;
      console.log(
        `rotation, ${label}: ${result!.rewrapped} data keys re-wrapped (${count} backups × local + offsite) in ${seconds.toFixed(1)} s ` +
          `(${((seconds * 1000) / result!.rewrapped).toFixed(1)} ms each); making the backups took ${made.toFixed(0)} s`,
      );
    }
    await client.connection.close();
    kms.destroy();
  } finally {
    await Promise.all([s3.stop(), kmsServer.stop(), temporal.stop()]);
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
