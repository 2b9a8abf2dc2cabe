import pg from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import type { DatabaseConfig } from '../config/config';
import { LifelineError } from '../errors';
import { registerSecret, unmovableSecretParams } from '../security/redact';

/** A connection resolved on the worker side: the password never leaves this process's memory. */
export interface ResolvedConnection {
  /** The URL without its password: safe for argv, logs and messages. */
  safeUrl: string;
  password?: string;
  /** A `passfile` the URL named: given to libpq as PGPASSFILE. */
  passfile?: string;
  /** The URL's `options` (server settings at connection start): merged with Lifeline's own, see SAFE_SEARCH_PATH. */
  options?: string;
  /** Host and database, for messages. */
  label: string;
}

/** Removes a URL parameter and returns its value (the last one wins, as in libpq). */
function takeParam(url: URL, name: string): string | undefined {
  if (!url.searchParams.has(name)) return undefined; // untouched: rewriting the query would re-encode it
  const value = url.searchParams.getAll(name).at(-1);
  url.searchParams.delete(name);
  return value;
}

export function resolveConnection(db: DatabaseConfig, env: NodeJS.ProcessEnv = process.env): ResolvedConnection {
  const url = new URL(db.url);
  // libpq also reads `password` and `passfile` from the URL's query; on a command line `ps` would
  // show them, so they leave the URL and travel in the environment (PGPASSWORD, PGPASSFILE).
  const unmovable = unmovableSecretParams(url);
  if (unmovable.length > 0) {
    // The configuration check refuses these too; a URL from elsewhere (a restore target) meets this one.
    throw new LifelineError('InvalidInput', `the URL of ${db.name} holds ${unmovable.join(', ')}, a secret that would show on pg_dump's command line`, {
      hint: 'put it in a service file (PGSERVICEFILE, ?service=NAME) or use a key file without a passphrase (mode 0600)',
    });
  }
  const fromParam = takeParam(url, 'password');
  const passfile = takeParam(url, 'passfile');
  // Out of the URL so that Lifeline's own setting can follow it (libpq ignores PGOPTIONS when the URL has options).
  const options = takeParam(url, 'options');
  let password = url.password ? decodeURIComponent(url.password) : fromParam;
  if (db.passwordEnv) {
    password = env[db.passwordEnv];
    if (password === undefined) {
      throw new LifelineError('PgAuthFailed', `environment variable ${db.passwordEnv} (password of database ${db.name}) is not set on this worker`, {
        hint: `export ${db.passwordEnv} in the worker's environment`,
      });
    }
  }
  url.password = '';
  registerSecret(password);
  return {
    safeUrl: url.toString(),
    password,
    passfile,
    options,
    label: `${url.hostname}:${url.port || 5432}/${decodeURIComponent(url.pathname.slice(1))}`,
  };
}

/**
 * Every session Lifeline opens itself starts with this search path: a function or operator that a
 * database's owner planted in a schema of theirs (and put first with ALTER DATABASE/ROLE ... SET
 * search_path) never runs in place of pg_catalog's with the worker's role. Startup options override
 * those settings. The operator's own check SQL and commands keep the usual path (OPERATOR_SEARCH_PATH).
 */
/** The search path of every session Lifeline opens itself. */
export const SAFE_SEARCH_PATH_VALUE = 'pg_catalog, pg_temp';
export const SAFE_SEARCH_PATH = `-c search_path=${SAFE_SEARCH_PATH_VALUE.replace(' ', '')}`;

/** The search path the operator's check SQL runs with: PostgreSQL's default, not the database's own (possibly changed) setting. */
export const OPERATOR_SEARCH_PATH = '"$user", public';

function withSafeSearchPath(options: string | undefined): string {
  return [options, SAFE_SEARCH_PATH].filter((o) => o).join(' ');
}

/**
 * Environment for libpq programs: the password goes here, not on argv, and the URL's `options` as
 * PGOPTIONS. For the operator's commands; Lifeline's own pg_dump, pg_restore and psql use sessionEnv.
 */
export function libpqEnv(conn: ResolvedConnection, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env = { ...base };
  if (conn.password !== undefined) env.PGPASSWORD = conn.password;
  if (conn.passfile !== undefined) env.PGPASSFILE = conn.passfile;
  if (conn.options !== undefined) env.PGOPTIONS = conn.options;
  return env;
}

/** Environment for Lifeline's own pg_dump, pg_restore and psql: libpqEnv with the safe search path. */
export function sessionEnv(conn: ResolvedConnection, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env = libpqEnv(conn, base);
  return { ...env, PGOPTIONS: withSafeSearchPath(env.PGOPTIONS) };
}

const HEALS_BY_ITSELF = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', '57P03', '53300', '57P01']);

/** Sorts a connection error into "fix your configuration" (not retried) and "try again later". */
export function classifyPgError(err: unknown, label: string): LifelineError {
  if (err instanceof LifelineError) return err;
  const e = err as { code?: string; message?: string };
  const text = e.message ?? String(err);
  if (e.code === '28P01' || e.code === '28000' || /password authentication failed|no password supplied|password must be a string/i.test(text)) {
    return new LifelineError('PgAuthFailed', `authentication to ${label} failed: ${text}`, {
      hint: 'check the user and password (URL, passwordEnv, .pgpass or PGPASSFILE) the worker uses',
      cause: err,
    });
  }
  if (e.code === '3D000' || /database ".*" does not exist/.test(text)) {
    return new LifelineError('PgUnknownDatabase', `${label}: ${text}`, {
      hint: 'check the database name in DATABASE_URL or lifeline.config.*',
      cause: err,
    });
  }
  if (e.code === '42501' || /permission denied/i.test(text)) {
    return new LifelineError('PgPermissionDenied', `${label}: ${text}`, {
      hint: /create database/i.test(text)
        ? 'restores and drills create a scratch database: grant the role CREATEDB (or give drills a server of their own with drill.serverUrl)'
        : 'the backup role needs SELECT on every table (for example the pg_read_all_data role)',
      cause: err,
    });
  }
  if ((e.code && HEALS_BY_ITSELF.has(e.code)) || /connection refused|could not connect|timeout|terminating connection|server closed/i.test(text)) {
    return new LifelineError('PgUnavailable', `cannot reach ${label}: ${text}`, {
      retryable: true,
      hint: 'the server may be down or restarting; Lifeline retries',
      cause: err,
    });
  }
  return new LifelineError('PgError', `${label}: ${text}`, { retryable: true, cause: err });
}

/**
 * node-postgres settings for a URL. Its own parser decodes the database name with decodeURI, which
 * leaves %24 ($), %23 (#), %3B (;) and the like encoded: the name is decoded here in full.
 */
export function pgClientConfig(url: string): pg.ClientConfig {
  return { ...parseIntoClientConfig(url), database: decodeURIComponent(new URL(url).pathname.slice(1)) };
}

/** The URL with its password back in it: for this process's memory, or an operator's command's environment, never argv or Temporal. */
export function urlWithPassword(conn: ResolvedConnection): string {
  const url = new URL(conn.safeUrl);
  if (conn.password !== undefined) url.password = encodeURIComponent(conn.password);
  return url.toString();
}

export async function connect(conn: ResolvedConnection): Promise<pg.Client> {
  // node-postgres lets a connection string override an explicit password, so the password goes
  // back into the URL here.
  const url = urlWithPassword(conn);
  // A server that accepts and never answers fails the connection instead of hanging it; keepalive
  // notices a server that went away in the middle of a long query.
  const client = new pg.Client({
    ...pgClientConfig(url),
    options: withSafeSearchPath(conn.options),
    application_name: 'lifeline',
    connectionTimeoutMillis: 30_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw classifyPgError(err, conn.label);
  }
  // An idle connection error (server restart) must not crash the worker.
  client.on('error', () => undefined);
  return client;
}

export async function withConnection<T>(conn: ResolvedConnection, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(conn);
  try {
    return await fn(client);
  } catch (err) {
    throw classifyPgError(err, conn.label);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}
