import { from as copyFrom } from 'pg-copy-streams';
import type pg from 'pg';
import { qualifiedName, type Manifest, type TableCount } from '../catalog/manifest';
import type { LifelineConfig } from '../config/config';
import { keyringFor } from '../crypto/keys';
import { dataKeyFor } from '../backup/read-backup';
import { IntegrityError, LifelineError } from '../errors';
import { copyFromSql } from '../parts/copy-sql';
import { partsOfTable } from '../parts/parts-of';
import type { PartRecord } from '../parts/part-record';
import { checkPart, openPart, partFailure, type PartReadChain } from '../parts/read-part';
import { runPipeline } from '../pipeline/run';
import { connect, resolveConnection } from '../postgres/connection';
import { backendPid, cancelQuery } from '../postgres/waits';
import { forceGuardRefusal, identityDigest, sessionIdentity } from './server-identity';
import { afterSql, beforeSql, LOAD_SETTINGS_SQL, restoreFailed, targetOids } from './table-sql';
import type { TablesRestore, TablesToRestore } from './tables';

/** One table's parts, in order. */
export interface TableParts {
  table: TableCount;
  parts: PartRecord[];
}

/**
 * The parts that hold the rows of the given tables. Every table of a parts backup has at least one
 * part (an empty table an empty one): a table without is a manifest that does not say what it held.
 */
export function partsToLoad(manifest: Pick<Manifest, 'id' | 'parts'>, leaves: readonly TableCount[]): TableParts[] {
  return leaves.map((table) => {
    const parts = table.oid === undefined ? [] : partsOfTable(manifest, table.oid);
    if (!parts.length) throw new IntegrityError(`backup ${manifest.id} lists no part holding the rows of ${qualifiedName(table)}`);
    return { table, parts };
  });
}

/**
 * A parts backup's table restore: one node-postgres session, one transaction. The session's
 * identity is compared with the force guard's digests, the tables (and every partition of a named
 * partitioned parent) are emptied with triggers and foreign-key cascades off, then each part is
 * fetched, decrypted with its own key and streamed into `COPY … FROM STDIN`, and checked (stored
 * and plain SHA-256 and sizes, row count) once read to its end. Every foreign key to or from the
 * tables is checked, and COMMIT is sent only when every part has passed. Any failure rolls the
 * whole transaction back. Only these tables' parts are read: never the archive, never another
 * table's rows. No psql and no script: names reach the server only as bind parameters, quoteIdent
 * (COPY) and OIDs.
 */
export async function restoreTableParts(config: LifelineConfig, r: TablesRestore, tables: TablesToRestore): Promise<void> {
  const load = partsToLoad(r.manifest, tables.leaves);
  const dataKey = await dataKeyFor(r.storage, r.manifest, keyringFor(config));
  const conn = resolveConnection(r.target);
  const client = await connect(conn);
  const pid = backendPid(client);
  if (pid !== undefined) r.onSession?.(pid);
  // A session waiting on a lock does not notice its client leave: its query is cancelled first.
  const onAbort = () => void (pid !== undefined ? cancelQuery(conn, pid) : Promise.resolve()).finally(() => client.end().catch(() => undefined));
  r.signal?.addEventListener('abort', onAbort, { once: true });
  let done = 0;
  let current: PartReadChain | undefined;
  const ticker = setInterval(() => r.onProgress?.(done + (current?.stored.bytes ?? 0)), 2000);
  const what = r.tables.join(', ');
  try {
    r.signal?.throwIfAborted();
    if (r.applicationName) await client.query(`SELECT pg_catalog.set_config('application_name', $1, false)`, [r.applicationName]);
    await client.query('BEGIN');
    await client.query(LOAD_SETTINGS_SQL);
    if (r.refuseIdentities?.includes(identityDigest(await sessionIdentity(client)))) throw forceGuardRefusal(conn.label);
    const oids = await targetOids(client, conn.label, tables.all);
    await client.query(beforeSql(oids));
    for (const { table, parts } of load) {
      for (const part of parts) {
        current = await openPart(r.storage, r.manifest, part, dataKey);
        await loadPart(client, current, table, part, r.signal);
        done += part.storedBytes;
        current = undefined;
      }
    }
    await client.query(afterSql(oids));
    r.signal?.throwIfAborted();
    await client.query('COMMIT');
  } catch (err) {
    if (r.signal?.aborted) throw r.signal.reason;
    if (err instanceof LifelineError) throw err;
    throw restoreFailed(what, conn.label, (err as Error).message);
  } finally {
    clearInterval(ticker);
    r.signal?.removeEventListener('abort', onAbort);
    // Without COMMIT, ending the session rolls the transaction back.
    await client.end().catch(() => undefined);
    dataKey.fill(0);
  }
}

/** Streams one part into COPY; fails, naming the part, unless it was read whole and is exactly what the manifest lists. */
async function loadPart(client: pg.Client, chain: PartReadChain, table: TableCount, part: PartRecord, signal?: AbortSignal): Promise<void> {
  const copy = client.query(copyFrom(copyFromSql(table)));
  try {
    await runPipeline([...chain.stages, copy], signal);
  } catch (err) {
    throw partFailure(err, chain.where);
  }
  checkPart(chain, part);
  if (part.rows !== undefined && copy.rowCount !== part.rows) {
    throw new IntegrityError(`${chain.where} loaded ${copy.rowCount} row(s) into ${qualifiedName(table)}; the manifest lists ${part.rows}`);
  }
}
