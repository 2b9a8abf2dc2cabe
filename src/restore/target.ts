import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { LifelineError } from '../errors';

/** A restore target, with the sentence that explains whether `--force` may replace it. */
export interface RestoreTarget extends DatabaseConfig {
  /** Why `--force` is refused here and what would allow it; undefined when it is allowed. */
  forceRefusal?: string;
}

function isUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//.test(target);
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[?::1\]?|\[?::ffff:127(\.\d{1,3}){3}\]?)$/;

/**
 * Where a postgresql:// URL connects, the way libpq reads it: `?host=`, `?hostaddr=`, `?port=` and
 * `?dbname=` override the URL's parts, and host and port may be lists. Host names compare
 * case-insensitively, the port defaults to 5432, and every form of "this machine" (loopback
 * addresses, localhost, a Unix socket folder, no host at all) counts as one host, so that a URL
 * cannot look like another database by spelling the same server differently.
 */
export function endpointOf(url: string): { places: Set<string>; database: string; label: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new LifelineError('InvalidInput', 'the target is not a URL like postgresql://user@host:5432/dbname');
  }
  const param = (name: string) => u.searchParams.getAll(name).flatMap((v) => v.split(','));
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const host = (h: string) => {
    const name = decode(h).trim().toLowerCase();
    return name === '' || name.startsWith('/') || name.startsWith('@') || LOOPBACK.test(name) ? 'local' : name.replace(/^\[(.*)\]$/, '$1');
  };
  const hosts = [...(param('host').length ? param('host') : [u.hostname]), ...param('hostaddr')].map(host);
  const ports = (param('port').length ? param('port') : [u.port]).map((p) => p.trim() || '5432');
  // Every host with every port: matching too much only makes a URL inherit a configured database's guards.
  const places = new Set(hosts.flatMap((h) => ports.map((p) => `${h}:${p}`)));
  const database = param('dbname').at(-1) ?? decode(u.pathname.slice(1));
  const label = `${decode(param('host')[0] ?? u.hostname) || 'localhost'}:${ports[0]}/${database}`;
  return { places, database, label };
}

/** The configured database a URL names (same server and database), if any. */
export function configuredDatabaseAt(config: LifelineConfig, url: string): DatabaseConfig | undefined {
  const wanted = endpointOf(url);
  return config.databases.find((db) => {
    const have = endpointOf(db.url);
    return have.database === wanted.database && [...have.places].some((p) => wanted.places.has(p));
  });
}

function refusalOf(db: DatabaseConfig, how: string): string | undefined {
  if (db.allowForceRestore) return undefined;
  return `target ${how} is ${db.production ? 'a production database' : 'a database'} that does not allow forced restores ` +
    `(allowForceRestore is not true for ${db.name}). Restore without --force and have someone approve it, ` +
    `or set allowForceRestore: true for ${db.name} in lifeline.config.yaml if it may be replaced without one`;
}

/**
 * A restore target: a configured database, or a URL without a password (the worker's .pgpass or
 * PGPASSFILE supplies it). A URL that names a configured database (same server, port and
 * database) is that database, with its production, force and four-eyes settings. Any other URL is
 * treated as production; `--force` may replace it only where allowForceRestoreToUrlTargets says so.
 */
export function resolveTarget(config: LifelineConfig, target: string): RestoreTarget {
  if (!isUrl(target)) {
    const db = config.databases.find((d) => d.name === target);
    if (!db) {
      throw new LifelineError('UnknownDatabase', `restore target "${target}" is neither a configured database (${config.databases.map((d) => d.name).join(', ')}) nor a postgresql:// URL`);
    }
    return { ...db, forceRefusal: refusalOf(db, db.name) };
  }
  const url = new URL(target);
  if (url.password || url.searchParams.has('password')) {
    throw new LifelineError('InvalidInput', 'the target URL holds a password; pass it without one (the worker reads .pgpass or PGPASSFILE)');
  }
  const { database, label } = endpointOf(target);
  const configured = configuredDatabaseAt(config, target);
  if (configured) {
    // The URL's own user connects (its password from .pgpass), with the configured database's guards.
    return { ...configured, url: target, passwordEnv: undefined, forceRefusal: refusalOf(configured, `${label} (configured database ${configured.name})`) };
  }
  const allowForce = config.restore.allowForceToUrlTargets;
  return {
    name: database.replace(/[^a-zA-Z0-9_-]/g, '_'),
    url: target,
    schedule: { kind: 'off' },
    retentionDays: config.retentionDays,
    retention: config.retention,
    drill: { criticalTables: [], sql: [], from: 'offsite' },
    backupDir: config.backupDir,
    production: true,
    allowForceRestore: allowForce,
    fourEyes: true,
    restoreChecks: {},
    forceRefusal: allowForce
      ? undefined
      : `target ${label} is a URL that names no configured database, and forced restores to such URLs are off. ` +
        'Restore without --force and have someone approve it, add the database to lifeline.config.yaml with allowForceRestore: true, ' +
        'or set BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS=true (allowForceRestoreToUrlTargets) if every such URL is a scratch copy',
  };
}
