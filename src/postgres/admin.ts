import type pg from 'pg';
import { LifelineError } from '../errors';
import { quoteIdent, withConnection, type ResolvedConnection } from './connection';
import { parsePgUrl } from './pg-url';

/**
 * The same server and credentials, connected to another database (by default the maintenance db).
 * parsePgUrl refuses a URL whose query names a database, so the path alone decides it for libpq too.
 */
export function onDatabase(conn: ResolvedConnection, database = 'postgres'): ResolvedConnection {
  parsePgUrl(conn.safeUrl, { what: `the URL of ${conn.label}` });
  const url = new URL(conn.safeUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return { ...conn, safeUrl: url.toString(), label: `${url.hostname}:${url.port || 5432}/${database}` };
}

/** The database a connection uses (and a full restore renames): read as the restore guard reads it. */
export function databaseOf(conn: ResolvedConnection): string {
  return parsePgUrl(conn.safeUrl, { what: `the URL of ${conn.label}` }).database;
}

export async function databaseSize(client: pg.Client, name: string): Promise<number | undefined> {
  const { rows } = await client.query<{ n: string }>('SELECT pg_database_size(datname) AS n FROM pg_database WHERE datname = $1', [name]);
  return rows[0] ? Number(rows[0].n) : undefined;
}

export async function databaseExists(client: pg.Client, name: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
}

/** Drops a database if it is there, ending its sessions (PostgreSQL 13+). */
export async function dropDatabaseIfExists(client: pg.Client, name: string): Promise<void> {
  await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
}

/** Ends every other session on a database (they would block a rename). */
export async function terminateConnections(client: pg.Client, name: string): Promise<number> {
  const { rowCount } = await client.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [name],
  );
  return rowCount ?? 0;
}

/** Renames a database, ending sessions that reconnect in between (a few tries). */
export async function renameDatabase(client: pg.Client, from: string, to: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await terminateConnections(client, from);
    try {
      await client.query(`ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '55006' || attempt >= 5) {
        throw new LifelineError('RestoreSwapFailed', `cannot rename database ${from} to ${to}: ${(err as Error).message}`, {
          retryable: true,
          hint: 'stop the application so that it stops reconnecting, then approve again or let Lifeline retry',
        });
      }
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

export async function withServer<T>(conn: ResolvedConnection, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withConnection(onDatabase(conn), fn);
}
