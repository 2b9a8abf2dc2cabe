import type pg from 'pg';
import type { LifelineConfig } from '../config/config';
import { databaseOf, withServer } from '../postgres/admin';
import { resolveConnection, withConnection, type ResolvedConnection } from '../postgres/connection';
import { refusalOf } from './target';

/** A server's system identifier: one per initdb, the same through any address, port forward or proxy. */
export async function systemIdentifier(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
  return rows[0]!.id;
}

/**
 * Why `--force` may not replace a URL target that its address matched to no configured database:
 * the server behind it (system identifier) and the database are a configured one's that does not
 * allow forced restores, reached another way (a tunnel, a proxy, another address of the host).
 * A configured database that cannot be asked refuses the force too: nothing proves it is not the
 * target. Undefined when the force may go ahead.
 */
export async function identityRefusal(config: LifelineConfig, conn: ResolvedConnection): Promise<string | undefined> {
  const target = { database: databaseOf(conn), label: conn.label, systemId: '' };
  try {
    target.systemId = await withServer(conn, systemIdentifier);
  } catch (err) {
    return `cannot tell whether target ${target.label} is a configured database (its server identity could not be read: ${(err as Error).message}). Restore without --force and have someone approve it`;
  }
  for (const db of config.databases) {
    let id: string;
    try {
      id = await withConnection(resolveConnection(db), systemIdentifier);
    } catch (err) {
      return (
        `cannot tell whether target ${target.label} is configured database ${db.name} (its server identity could not be read: ${(err as Error).message}). ` +
        'Restore without --force and have someone approve it, or force again once it answers'
      );
    }
    if (id !== target.systemId || databaseOf(resolveConnection(db)) !== target.database) continue;
    const refusal = refusalOf(db, `${target.label} (the same server, system identifier ${id}, and database as configured database ${db.name})`);
    if (refusal) return refusal;
  }
  return undefined;
}
