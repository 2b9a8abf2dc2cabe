/**
 * The real servers the integration tests use: a Temporal dev server (SQLite file, so tests can
 * inspect what Temporal stored) and a private PostgreSQL cluster. `npm test` (scripts/test.ts)
 * starts them once for all files and passes them in LIFELINE_TEST_*; a file run on its own starts
 * its own and stops them when it ends.
 */
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { startLocalKms } from '../../src/infra/kms-server';
import { quietAwsSdk } from '../../src/storage/s3';
import { PrivateCluster } from '../../src/infra/postgres-cluster';
import { startLocalS3 } from '../../src/infra/s3-server';
import { startTemporalDevServer } from '../../src/infra/temporal-dev-server';
import { ensureLocalKms, ensureSystemTools, ensureTemporalCli, ensureVersitygw } from '../../src/infra/tools';

quietAwsSdk();

export interface TestServers {
  temporalAddress: string;
  /** The dev server's SQLite file. */
  temporalDbFile: string;
  cluster: PrivateCluster;
  workDir: string;
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; dataDir: string };
  kms: { endpoint: string; region: string };
}

/** A fixed key local-kms is seeded with, to check the server answers (DescribeKey). */
export const SEEDED_KMS_KEY = { keyId: '7d1b2f4e-5a6c-4e8f-9b0a-1c2d3e4f5a6b', backingKey: '5cdaead27fe7da2de47945d73cd6d79e36494e73802f3cd3869f1d2cb0b5d7a9', alias: 'alias/lifeline-seeded' };

export const ENV = {
  address: 'LIFELINE_TEST_TEMPORAL_ADDRESS',
  dbFile: 'LIFELINE_TEST_TEMPORAL_DB',
  pgDir: 'LIFELINE_TEST_PG_DIR',
  pgPort: 'LIFELINE_TEST_PG_PORT',
  workDir: 'LIFELINE_TEST_WORK_DIR',
  s3: 'LIFELINE_TEST_S3',
  kms: 'LIFELINE_TEST_KMS',
} as const;

export async function startTestServers(workDir: string): Promise<TestServers & { stop(): Promise<void> }> {
  await ensureSystemTools((l) => console.log(l));
  // One after another: on a new machine, building all three at once measured no faster (8m21s).
  const say = (l: string) => console.log(l);
  const cliPath = await ensureTemporalCli(say);
  const versitygw = await ensureVersitygw(say);
  const localKms = await ensureLocalKms(say);
  const temporalDbFile = path.join(workDir, 'temporal', 'temporal.db');
  const server = await startTemporalDevServer({ cliPath, dbFile: temporalDbFile, logFile: path.join(workDir, 'temporal', 'server.log') });
  const cluster = await new PrivateCluster(path.join(workDir, 'postgres')).start();
  const s3 = await startLocalS3(versitygw, path.join(workDir, 's3'));
  const kms = await startLocalKms(localKms, path.join(workDir, 'kms'), [SEEDED_KMS_KEY]);
  return {
    temporalAddress: server.address,
    temporalDbFile,
    cluster,
    workDir,
    s3: { endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, dataDir: s3.dataDir },
    kms: { endpoint: kms.endpoint, region: kms.region },
    async stop() {
      await Promise.all([server.stop(), cluster.stop(), s3.stop(), kms.stop()]);
    },
  };
}

export function newWorkDir(label: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `lifeline-${label}-`));
  chmodSync(dir, 0o755); // the cluster's owner (postgres, when we are root) must reach inside
  return dir;
}

let shared: Promise<TestServers> | undefined;

export function testServers(): Promise<TestServers> {
  shared ??= (async () => {
    const env = process.env;
    if (env[ENV.address] && env[ENV.pgDir] && env[ENV.pgPort]) {
      const cluster = await new PrivateCluster(env[ENV.pgDir]!, Number(env[ENV.pgPort])).start();
      return {
        temporalAddress: env[ENV.address]!,
        temporalDbFile: env[ENV.dbFile]!,
        cluster,
        workDir: env[ENV.workDir]!,
        s3: JSON.parse(env[ENV.s3]!),
        kms: JSON.parse(env[ENV.kms]!),
      };
    }
    const servers = await startTestServers(newWorkDir('servers'));
    ownServers = servers;
    return servers;
  })();
  return shared;
}

// Registered on the file's root when this module loads: an after() called from a before hook
// would belong to that hook and stop the servers as soon as the hook ends.
let ownServers: { stop(): Promise<void> } | undefined;
after(() => ownServers?.stop());
