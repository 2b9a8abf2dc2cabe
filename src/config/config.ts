import { LifelineError } from '../errors';
import type { CompressionAlgorithm } from '../pipeline/compression';

export type ScheduleSpec = { kind: 'daily'; hour: number; minute: number } | { kind: 'cron'; expression: string } | { kind: 'off' };

/**
 * One database Lifeline backs up. `url` may hold a password: it stays on the worker side and is
 * never passed to Temporal (workflows only see `name`).
 */
export interface DatabaseConfig {
  name: string;
  url: string;
  /** Environment variable holding the password, read when connecting. */
  passwordEnv?: string;
  schedule: ScheduleSpec;
  retentionDays: number;
  backupDir: string;
  production: boolean;
  allowForceRestore: boolean;
  restoreChecks: RestoreChecks;
}

export interface RestoreChecks {
  /** Each query must return a single true value, e.g. "SELECT count(*) > 0 FROM users". */
  sql?: string[];
  /** Run with DATABASE_URL set to the restored database; must exit 0. */
  command?: string;
  /** Must answer 2xx after the restore is in place. */
  healthUrl?: string;
}

export interface LifelineConfig {
  /** Where the configuration came from, for messages. */
  sources: string[];
  backupDir: string;
  retentionDays: number;
  encryption: { keyFile: string; cipher: 'aes-256-gcm' };
  compression: { algorithm: CompressionAlgorithm; level?: number };
  parallelJobs: number;
  /** How long a stopping worker lets running steps finish before cancelling them. */
  shutdownGraceSeconds: number;
  notifications: { webhookUrl?: string; email: string[] };
  temporal: { address: string; namespace: string; taskQueue: string };
  databases: DatabaseConfig[];
}

export function findDatabase(config: LifelineConfig, name: string): DatabaseConfig {
  const db = config.databases.find((d) => d.name === name);
  if (!db) {
    const known = config.databases.map((d) => d.name).join(', ') || 'none';
    throw new LifelineError('UnknownDatabase', `unknown database "${name}" (configured: ${known})`, {
      hint: 'use one of the configured names, or add the database to lifeline.config.yaml',
    });
  }
  return db;
}
