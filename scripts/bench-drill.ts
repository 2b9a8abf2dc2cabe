/**
 * `npm run bench:drill`: a disaster-recovery drill on the benchmark's ledger database (bench-seed.ts,
 * seeded once): a backup replicated to a local versitygw, then drillWorkflow on a Temporal dev server
 * (download from S3, decrypt, restore into a scratch database, verify), printing its report.
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { Client } from '@temporalio/client';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { storageNamed } from '../src/backup/repository';
import { loadConfig } from '../src/config/load';
import { createKeyFile } from '../src/crypto/keys/local-key-file';
import { renderDrillMarkdown } from '../src/drill/reports';
import { startLocalS3 } from '../src/infra/s3-server';
import { startTemporalDevServer } from '../src/infra/temporal-dev-server';
import { ensureTemporalCli, ensureVersitygw } from '../src/infra/tools';
import type { S3Storage } from '../src/storage/s3';
import { connectTemporal } from '../src/temporal/client';
import { dataConverterFor } from '../src/temporal/data-converter';
import { createWorker } from '../src/temporal/worker';
import { BACKUP_WORKFLOW_TYPE, DRILL_WORKFLOW_TYPE, type DrillReport } from '../workflows/definitions';
import { benchDatabase } from './bench-seed';

const root = path.resolve(__dirname, '..');

async function main() {
  const { cluster, name } = await benchDatabase(root);
  const work = mkdtempSync(path.join(tmpdir(), 'lifeline-bench-drill-'));
  const s3 = await startLocalS3(await ensureVersitygw(console.log), path.join(work, 's3'));
  const temporal = await startTemporalDevServer({ cliPath: await ensureTemporalCli(console.log), dbFile: path.join(work, 'temporal.db'), logFile: path.join(work, 'temporal.log') });
  process.env.BACKUP_S3_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.BACKUP_S3_SECRET_ACCESS_KEY = s3.secretAccessKey;
  const keyFile = path.join(work, 'keys', 'master.key');
  await createKeyFile(keyFile);
  const file = path.join(work, 'lifeline.config.json');
  writeFileSync(
    file,
    JSON.stringify({
      databases: [
        {
          name,
          url: cluster.adminUrl(name),
          drill: {
            criticalTables: ['public.users', 'public.accounts'],
            sql: ['SELECT NOT EXISTS (SELECT 1 FROM public.accounts a LEFT JOIN public.users u ON u.id = a.user_id WHERE u.id IS NULL)'],
          },
        },
      ],
    }),
  );
  const config = loadConfig({
    cwd: work,
    file,
    env: {
      BACKUP_DIR: path.join(work, 'repo'),
      BACKUP_ENCRYPTION_KEY: keyFile,
      BACKUP_S3_BUCKET: 'bench-drill',
      BACKUP_S3_ENDPOINT: s3.endpoint,
      BACKUP_S3_ACCESS_KEY_ID: s3.accessKeyId,
      BACKUP_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      TEMPORAL_ADDRESS: temporal.address,
      LIFELINE_TASK_QUEUE: 'bench-drill',
    },
  });
  const client = new Client({ connection: await connectTemporal(temporal.address), dataConverter: dataConverterFor(config) });
  const worker = await createWorker(config);
  const running = worker.run();
  try {
    await (storageNamed(config, config.databases[0]!, 'offsite') as S3Storage).client.send(new CreateBucketCommand({ Bucket: 'bench-drill' }));
    const backupStarted = Date.now();
    await client.workflow.execute(BACKUP_WORKFLOW_TYPE, { taskQueue: 'bench-drill', workflowId: `bench-backup-${Date.now()}`, args: [{ database: name }] });
    console.log(`Backup (dump, verify, checksums of the critical tables, replication to S3): ${((Date.now() - backupStarted) / 1000).toFixed(1)} s`);
    const report = (await client.workflow.execute(DRILL_WORKFLOW_TYPE, {
      taskQueue: 'bench-drill',
      workflowId: `bench-drill-${Date.now()}`,
      args: [{ database: name, kind: 'manual', requestedBy: 'bench' }],
    })) as DrillReport;
    console.log(renderDrillMarkdown(report));
  } finally {
    worker.shutdown();
    await running;
    await client.connection.close();
    await Promise.all([s3.stop(), temporal.stop()]);
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
