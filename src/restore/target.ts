import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { LifelineError } from '../errors';

function isUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//.test(target);
}

/**
 * A restore target: a configured database, or a URL without a password (the worker's .pgpass or
 * PGPASSFILE supplies it). A URL target is treated as a non-production database named after it.
 */
export function resolveTarget(config: LifelineConfig, target: string): DatabaseConfig {
  if (!isUrl(target)) {
    const db = config.databases.find((d) => d.name === target);
    if (!db) {
      throw new LifelineError('UnknownDatabase', `restore target "${target}" is neither a configured database (${config.databases.map((d) => d.name).join(', ')}) nor a postgresql:// URL`);
    }
    return db;
  }
  const url = new URL(target);
  if (url.password) {
    throw new LifelineError('InvalidInput', 'the target URL holds a password; pass it without one (the worker reads .pgpass or PGPASSFILE)');
  }
  const database = decodeURIComponent(url.pathname.slice(1));
  return {
    name: database.replace(/[^a-zA-Z0-9_-]/g, '_'),
    url: target,
    schedule: { kind: 'off' },
    retentionDays: config.retentionDays,
    retention: config.retention,
    drill: { criticalTables: [], sql: [], from: 'offsite' },
    backupDir: config.backupDir,
    production: false,
    allowForceRestore: true,
    restoreChecks: {},
  };
}
