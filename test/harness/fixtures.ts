import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { LifelineConfig } from '../../src/config/config';
import { loadConfig } from '../../src/config/load';
import { pgClientConfig } from '../../src/postgres/connection';
import { createKeyFile } from '../../src/crypto/keys/local-key-file';
import { importCodecKey } from '../../src/crypto/codec-keys';
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

/**
 * Waits for the next wall-clock second. Backup ids name the second a backup starts in, so a second
 * backup of one database in the same second is refused as a duplicate; a test taking two in a row waits.
 */
export async function nextSecond(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
}

export interface TestSetup {
  dir: string;
  config: LifelineConfig;
  env: Record<string, string>;
}

export interface TestConfigOptions {
  /** Entries for the config file's `destinations`. */
  destinations?: Array<Record<string, unknown>>;
  /** More environment (BACKUP_KMS_KEY_ID, …). */
  env?: Record<string, string>;
}

/** A configuration of our own: its own folder, key, task queue, and the given databases. */
export async function testConfig(
  servers: TestServers,
  label: string,
  databases: Array<{ name: string; url: string; [k: string]: unknown }>,
  options: TestConfigOptions = {},
): Promise<TestSetup> {
  const dir = newWorkDir(label);
  mkdirSync(path.join(dir, 'keys'), { recursive: true });
  const keyFile = path.join(dir, 'keys', 'master.key');
  await createKeyFile(keyFile);
  writeFileSync(path.join(dir, 'lifeline.config.json'), JSON.stringify({ databases, ...(options.destinations && { destinations: options.destinations }) }, null, 2));
  const env = {
    BACKUP_DIR: path.join(dir, 'backups'),
    BACKUP_ENCRYPTION_KEY: keyFile,
    TEMPORAL_ADDRESS: servers.temporalAddress,
    LIFELINE_TASK_QUEUE: `test-${label}-${randomBytes(4).toString('hex')}`,
    LIFELINE_CONFIG: path.join(dir, 'lifeline.config.json'),
    // The variables destinations name for their credentials, as the worker's environment holds them.
    ...Object.fromEntries(
      (options.destinations ?? []).flatMap((d) => [d.accessKeyIdEnv, d.secretAccessKeyEnv]).filter((n): n is string => typeof n === 'string').map((n) => [n, process.env[n] ?? '']),
    ),
    ...options.env,
  };
  const config = loadConfig({ cwd: dir, env });
  // Recording replay histories: payloads encrypted with the committed fixture key the replay test decodes with.
  if (process.env.LIFELINE_RECORD_HISTORY) await importCodecKey(config, replayCodecKey());
  return { dir, env, config };
}

export async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client(pgClientConfig(url));
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

/** A destination entry on the test S3 server; creates its bucket (versioned, with object lock, when it has `objectLock`). */
export async function s3Destination(
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string },
  name: string,
  bucket: string,
  extra: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  // Names of variables travel in configuration; the values stay in this (the worker's) process.
  process.env.LIFELINE_TEST_S3_KEY = s3.accessKeyId;
  process.env.LIFELINE_TEST_S3_SECRET = s3.secretAccessKey;
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: extra.objectLock !== undefined }));
  } catch (err) {
    if (!['BucketAlreadyOwnedByYou', 'BucketAlreadyExists'].includes((err as Error).name)) throw err;
  } finally {
    client.destroy();
  }
  return { name, type: 's3', bucket, endpoint: s3.endpoint, accessKeyIdEnv: 'LIFELINE_TEST_S3_KEY', secretAccessKeyEnv: 'LIFELINE_TEST_S3_SECRET', ...extra };
}

/** The codec key the encoded histories in test/replay/histories were recorded with (a fixture, not a secret). */
export function replayCodecKey(): Buffer {
  return Buffer.from(JSON.parse(readFileSync(path.join(__dirname, '..', 'replay', 'codec-key.json'), 'utf8')).key, 'base64');
}
