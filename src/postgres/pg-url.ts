import { LifelineError } from '../errors';

/**
 * The one reading of a postgresql:// URL that the restore guard and the restore itself share: which
 * server (host, port) and which database. libpq and node-postgres each let query parameters override
 * the URL's parts (libpq: dbname, host, hostaddr, port, service; node-postgres: any setting, database
 * included), and read them differently; a URL whose query could send one of them elsewhere than the
 * guard judged is refused instead of interpreted.
 */
export interface PgUrl {
  /**
   * Hosts as written, decoded and lower-cased, without IPv6 brackets; '' when the URL names none. One
   * for a strict URL; a configured one may add `?host=`/`?hostaddr=` lists (every one counts).
   */
  hosts: string[];
  ports: number[];
  /** The database: the URL's path, decoded in full ('' in a configured server URL without one). */
  database: string;
}

/**
 * What a target URL's query may hold: settings that neither send the connection elsewhere, nor change
 * the session's behaviour (`options` could set search_path), nor name a file on the worker (`passfile`,
 * `sslkey`, `sslcert`, `sslrootcert`, `sslcrl`: the requester would choose which of the worker's
 * secrets go to the server they also name).
 */
const HARMLESS = new Set([
  'user', 'application_name', 'fallback_application_name', 'connect_timeout',
  'sslmode', 'sslsni', 'sslcompression', 'sslnegotiation', 'ssl_min_protocol_version', 'ssl_max_protocol_version',
  'requirepeer', 'require_auth', 'channel_binding', 'gssencmode',
  'keepalives', 'keepalives_idle', 'keepalives_interval', 'keepalives_count', 'tcp_user_timeout',
]);

/**
 * Parameters that name a database beside the path: libpq reads dbname, node-postgres database. (A
 * service file's dbname yields to the path in libpq, so `?service=` stays possible in configured URLs.)
 */
const DATABASE_PARAMS = ['dbname', 'database'];

function invalid(what: string, problem: string): LifelineError {
  return new LifelineError('InvalidInput', `${what}: ${problem}`, { hint: 'write it as postgresql://user@host:5432/dbname (a query such as ?sslmode=require may follow)' });
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Host, port and database of a URL. `strict` (a restore target someone typed) refuses every query
 * parameter not known to be harmless; otherwise (a configured URL: a socket folder in `?host=`, a
 * `?service=` for TLS secrets) only parameters that name another database than the path are refused.
 */
export function parsePgUrl(text: string, { strict = false, what = 'the target URL' } = {}): PgUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(what, 'not a URL like postgresql://user@host:5432/dbname');
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') throw invalid(what, `must use postgresql:// (got ${url.protocol}//)`);
  const keys = [...new Set(url.searchParams.keys())];
  const refused = strict ? keys.filter((k) => !HARMLESS.has(k) && k !== 'password') : keys.filter((k) => DATABASE_PARAMS.includes(k));
  if (refused.length) {
    const names = refused.map((k) => `"${k}"`).join(', ');
    throw invalid(
      what,
      strict
        ? `its query holds ${names}, which could connect elsewhere than the URL says, change the session, or name a file on the worker. Put host, port and database in the URL itself; ` +
            `the query may hold only ${[...HARMLESS].join(', ')}`
        : `its query holds ${names}, a database name beside the path's: name the database in the path alone`,
    );
  }
  // libpq reads a comma as a list of hosts to try; node-postgres as one (unresolvable) name.
  if (strict && decode(url.hostname).includes(',')) throw invalid(what, 'names several hosts (a comma in the host): give one');
  const param = (name: string) => url.searchParams.getAll(name).flatMap((v) => v.split(','));
  const hostParams = [...param('host'), ...param('hostaddr')];
  const hosts = (hostParams.length ? hostParams : decode(url.hostname).split(',')).map((h) => decode(h).trim().toLowerCase().replace(/^\[(.*)\]$/, '$1'));
  // Ports compare as numbers, never as spelled (libpq and node-postgres read 05432 as 5432).
  const ports = (param('port').length ? param('port') : [url.port]).map((p) => (p.trim() === '' ? 5432 : Number.parseInt(p.trim(), 10)));
  const database = decode(url.pathname.slice(1));
  if (strict && !database) throw invalid(what, 'names no database: write it as the path, postgresql://user@host:5432/dbname');
  return { hosts, ports, database };
}

/** A Unix socket folder (or an abstract socket, `@name`), or no host at all: this machine. */
export function isSocketHost(host: string): boolean {
  return host === '' || host.startsWith('/') || host.startsWith('@');
}
