import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { LifelineError } from '../errors';
import { isSocketHost, parsePgUrl, type PgUrl } from '../postgres/pg-url';

/** A restore target, with the sentence that explains whether `--force` may replace it. */
export interface RestoreTarget extends DatabaseConfig {
  /** Why `--force` is refused here and what would allow it; undefined when it is allowed. */
  forceRefusal?: string;
}

/** A restore target given as a URL rather than a configured database's name. */
export function isUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//.test(target);
}

/** One name for this machine: every address, socket and alias that reaches a server running here. */
const THIS_MACHINE = 'this machine';

/** An address in one spelling: IPv6 compressed, an IPv4-mapped one (::ffff:7f00:1) as the IPv4 address it reaches. */
function canonical(address: string): string {
  if (!address.includes(':')) return address.toLowerCase();
  let six: string;
  try {
    six = new URL(`http://[${address}]`).hostname.slice(1, -1);
  } catch {
    return address.toLowerCase();
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(six);
  if (!mapped) return six;
  const n = parseInt(mapped[1]!, 16) * 65536 + parseInt(mapped[2]!, 16);
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Loopback, the "any" address (Linux connects it to this host), or one of this machine's own addresses. */
function isThisMachine(address: string): boolean {
  if (/^127\./.test(address) || ['0.0.0.0', '::1', '::', 'localhost'].includes(address)) return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => canonical(i.address) === address));
}

/**
 * Where a host connects, as a set of addresses: resolved the way libpq and node-postgres resolve it
 * (getaddrinfo, which also reads 127.1, 2130706433 and 0x7f.1 as 127.0.0.1), so that a URL cannot
 * look like another server by spelling the same one differently. The name itself counts too: a name
 * that does not resolve now still matches its own spelling.
 */
async function addressesOf(host: string): Promise<string[]> {
  if (isSocketHost(host)) return [THIS_MACHINE];
  const found = await lookup(host, { all: true, verbatim: true }).catch(() => []);
  return [host, ...found.map((f) => f.address)].map(canonical).map((a) => (isThisMachine(a) ? THIS_MACHINE : a));
}

/** Every (address, port) a URL may connect to. Matching too much only makes a URL inherit a configured database's guards. */
async function placesOf(parsed: PgUrl): Promise<Set<string>> {
  const addresses = (await Promise.all(parsed.hosts.map(addressesOf))).flat();
  return new Set(addresses.flatMap((a) => parsed.ports.map((p) => `${a} port ${p}`)));
}

/** The configured database a URL names (same server, port and database), if any. */
export async function configuredDatabaseAt(config: LifelineConfig, url: string): Promise<DatabaseConfig | undefined> {
  const wanted = parsePgUrl(url, { strict: true });
  const places = await placesOf(wanted);
  for (const db of config.databases) {
    const have = parsePgUrl(db.url, { what: `the url of database ${db.name}` });
    if (have.database === wanted.database && [...(await placesOf(have))].some((p) => places.has(p))) return db;
  }
  return undefined;
}

export function refusalOf(db: DatabaseConfig, how: string): string | undefined {
  if (db.allowForceRestore) return undefined;
  return `target ${how} is ${db.production ? 'a production database' : 'a database'} that does not allow forced restores ` +
    `(allowForceRestore is not true for ${db.name}). Restore without --force and have someone approve it, ` +
    `or set allowForceRestore: true for ${db.name} in lifeline.config.yaml if it may be replaced without one`;
}

/**
 * A restore target: a configured database, or a URL without a password (the worker's .pgpass or
 * PGPASSFILE supplies it) whose query holds nothing that re-routes the connection. A URL that names
 * a configured database (same server addresses, port and database) is that database, with its
 * production, force and four-eyes settings. Any other URL is treated as production; `--force` may
 * replace it only where allowForceRestoreToUrlTargets says so (and, checked in the plan and again on the session that acts, where the
 * server's identity is no configured database's: see server-identity.ts).
 */
export async function resolveTarget(config: LifelineConfig, target: string): Promise<RestoreTarget> {
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
  const { hosts, ports, database } = parsePgUrl(target, { strict: true });
  const label = `${hosts[0] || 'localhost'}:${ports[0]}/${database}`;
  const configured = await configuredDatabaseAt(config, target);
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
