import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { LifelineError } from '../errors';
import { databaseOf, withServer } from '../postgres/admin';
import { resolveConnection, withConnection, type ResolvedConnection } from '../postgres/connection';
import { refusalOf } from './target';

/** Where a session is: its server's system identifier (one per initdb, the same through any address, port forward or proxy) and database. */
export interface ServerIdentity {
  systemId: string;
  database: string;
}

/** A server's system identifier. */
export async function systemIdentifier(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_catalog.pg_control_system()');
  return rows[0]!.id;
}

/** The identity of the session itself: the database as the server names it, not as a URL spells it. */
export async function sessionIdentity(client: pg.Client): Promise<ServerIdentity> {
  const { rows } = await client.query<{ id: string; db: string }>(
    'SELECT s.system_identifier::text AS id, pg_catalog.current_database() AS db FROM pg_catalog.pg_control_system() s',
  );
  return { systemId: rows[0]!.id, database: rows[0]!.db };
}

/** SHA-256 hex of `<system identifier>/<database>`: what a psql script compares (IDENTITY_DIGEST_SQL), so that no name becomes script text. */
export function identityDigest(identity: ServerIdentity): string {
  return createHash('sha256').update(`${identity.systemId}/${identity.database}`, 'utf8').digest('hex');
}

/** identityDigest of the session it runs in, computed by the server. */
export const IDENTITY_DIGEST_SQL =
  `(SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.concat(s.system_identifier, '/', pg_catalog.current_database()), 'UTF8')), 'hex') ` +
  'FROM pg_catalog.pg_control_system() s)';

/** The target's identity, read over a session on the target database itself (a proxy may route the `postgres` database elsewhere). */
async function targetIdentity(conn: ResolvedConnection): Promise<ServerIdentity> {
  try {
    return await withConnection(conn, sessionIdentity);
  } catch (err) {
    // A full restore may create its target: then the server is asked, and the swap checks again on the session that renames.
    if ((err as LifelineError).code !== 'PgUnknownDatabase') throw err;
    return { systemId: await withServer(conn, systemIdentifier), database: databaseOf(conn) };
  }
}

/** Each configured database that refuses `--force`, with its identity (or why it could not be read). */
async function refusingDatabases(config: LifelineConfig): Promise<Array<{ db: DatabaseConfig; identity?: ServerIdentity; error?: string }>> {
  const refusing = config.databases.filter((db) => refusalOf(db, db.name) !== undefined);
  return Promise.all(
    refusing.map(async (db) => {
      try {
        return { db, identity: await withConnection(resolveConnection(db), sessionIdentity) };
      } catch (err) {
        return { db, error: (err as Error).message };
      }
    }),
  );
}

function unreadable(target: string, db: string, error: string): string {
  return (
    `cannot tell whether target ${target} is configured database ${db} (its server identity could not be read: ${error}). ` +
    'Restore without --force and have someone approve it, or force again once it answers'
  );
}

/**
 * Why `--force` may not replace a URL target that its address matched to no configured database:
 * the server behind it (system identifier) and the database are a configured one's that does not
 * allow forced restores, reached another way (a tunnel, a proxy, another address of the host).
 * A configured database that cannot be asked refuses the force too: nothing proves it is not the
 * target. Undefined when the force may go ahead. Checked again where the restore acts (forceGuard).
 */
export async function identityRefusal(config: LifelineConfig, conn: ResolvedConnection): Promise<string | undefined> {
  let target: ServerIdentity;
  try {
    target = await targetIdentity(conn);
  } catch (err) {
    return `cannot tell whether target ${conn.label} is a configured database (its server identity could not be read: ${(err as Error).message}). Restore without --force and have someone approve it`;
  }
  for (const { db, identity, error } of await refusingDatabases(config)) {
    if (!identity) return unreadable(conn.label, db.name, error!);
    if (identity.systemId !== target.systemId || identity.database !== target.database) continue;
    return refusalOf(db, `${conn.label} (the same server, system identifier ${identity.systemId}, and database as configured database ${db.name})`);
  }
  return undefined;
}

/**
 * The identity digests a forced restore to a URL must not act on: every configured database that
 * refuses `--force`. Compared on the very session that acts, right before it acts.
 */
export async function forceGuard(config: LifelineConfig, targetLabel: string): Promise<string[]> {
  const digests: string[] = [];
  for (const { db, identity, error } of await refusingDatabases(config)) {
    // Retried: the database may answer again (nothing was changed yet).
    if (!identity) throw new LifelineError('ForceRefused', unreadable(targetLabel, db.name, error!), { retryable: true });
    digests.push(identityDigest(identity));
  }
  return digests;
}

export function forceGuardRefusal(targetLabel: string): LifelineError {
  return new LifelineError('ForceRefused', `forced restore refused: target ${targetLabel} is, on the session that would change it, a configured database that does not allow forced restores (same server identity and database); nothing was changed`, {
    hint: 'restore without --force and have someone approve it',
  });
}
