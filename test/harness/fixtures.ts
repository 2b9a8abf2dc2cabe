import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { LifelineConfig } from '../../src/config/config';
import { loadConfig } from '../../src/config/load';
import { createKeyFile } from '../../src/crypto/keys/local-key-file';
import { seedMoneyFlowAt, type SeedSize } from '../../src/infra/moneyflow-seed';
import { newWorkDir, type TestServers } from './servers';

export const SMALL: SeedSize = { users: 60, transactions: 3000 };

/** A seeded database owned by a role that must give its password (scram-sha-256). */
export async function seededDatabase(servers: TestServers, name: string, size: SeedSize = SMALL): Promise<{ url: string; password: string }> {
  const password = `pw-${randomBytes(12).toString('hex')}-secret`;
  const url = await servers.cluster.createDatabase(name, `${name}_owner`, password);
  await seedMoneyFlowAt(url, size);
  return { url, password };
}

export interface TestSetup {
  dir: string;
  config: LifelineConfig;
  env: Record<string, string>;
}

/** A configuration of our own: its own folder, key, task queue, and the given databases. */
export async function testConfig(servers: TestServers, label: string, databases: Array<{ name: string; url: string; [k: string]: unknown }>): Promise<TestSetup> {
  const dir = newWorkDir(label);
  mkdirSync(path.join(dir, 'keys'), { recursive: true });
  const keyFile = path.join(dir, 'keys', 'master.key');
  await createKeyFile(keyFile);
  writeFileSync(path.join(dir, 'lifeline.config.json'), JSON.stringify({ databases }, null, 2));
  const env = {
    BACKUP_DIR: path.join(dir, 'backups'),
    BACKUP_ENCRYPTION_KEY: keyFile,
    TEMPORAL_ADDRESS: servers.temporalAddress,
    LIFELINE_TASK_QUEUE: `test-${label}-${randomBytes(4).toString('hex')}`,
    LIFELINE_CONFIG: path.join(dir, 'lifeline.config.json'),
  };
  return { dir, env, config: loadConfig({ cwd: dir, env }) };
}

export async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}
