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
import { PrivateCluster } from '../../src/infra/postgres-cluster';
import { startTemporalDevServer } from '../../src/infra/temporal-dev-server';
import { ensureSystemTools, ensureTemporalCli } from '../../src/infra/tools';

export interface TestServers {
  temporalAddress: string;
  /** The dev server's SQLite file. */
  temporalDbFile: string;
  cluster: PrivateCluster;
  workDir: string;
}

export const ENV = {
  address: 'LIFELINE_TEST_TEMPORAL_ADDRESS',
  dbFile: 'LIFELINE_TEST_TEMPORAL_DB',
  pgDir: 'LIFELINE_TEST_PG_DIR',
  pgPort: 'LIFELINE_TEST_PG_PORT',
  workDir: 'LIFELINE_TEST_WORK_DIR',
} as const;

export async function startTestServers(workDir: string): Promise<TestServers & { stop(): Promise<void> }> {
  await ensureSystemTools((l) => console.log(l));
  const cliPath = await ensureTemporalCli((l) => console.log(l));
  const temporalDbFile = path.join(workDir, 'temporal', 'temporal.db');
  const server = await startTemporalDevServer({ cliPath, dbFile: temporalDbFile, logFile: path.join(workDir, 'temporal', 'server.log') });
  const cluster = await new PrivateCluster(path.join(workDir, 'postgres')).start();
  return {
    temporalAddress: server.address,
    temporalDbFile,
    cluster,
    workDir,
    async stop() {
      await server.stop();
      await cluster.stop();
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
      return { temporalAddress: env[ENV.address]!, temporalDbFile: env[ENV.dbFile]!, cluster, workDir: env[ENV.workDir]! };
    }
    const servers = await startTestServers(newWorkDir('servers'));
    after(() => servers.stop());
    return servers;
  })();
  return shared;
}
