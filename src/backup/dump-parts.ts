import { Readable } from 'node:stream';
import type pg from 'pg';
import { qualifiedName, type DumpRecord, type TableCount } from '../catalog/manifest';
import { dataKey } from '../catalog/naming';
import { LifelineError } from '../errors';
import { cancelOwnSessions, closeSession, copyOut, RowCounter, SnapshotSessions } from '../parts/copy-out';
import { copyToSql } from '../parts/copy-sql';
import { captureGlobals } from '../parts/globals';
import { ARCHIVE_PART, GLOBALS_PART, parseTablePartName, partObjectKey } from '../parts/part-names';
import { PARTS_FORMAT, type PartRecord } from '../parts/part-record';
import { planParts, type PlannedPart } from '../parts/plan-parts';
import { runPool } from '../parts/pool';
import { PartWriter, type WrittenPart } from '../parts/write-part';
import { chooseLevel, FILE_EXTENSION } from '../pipeline/compression';
import { classifyPgError, connect } from '../postgres/connection';
import { startPgDump } from '../postgres/pg-dump';
import { backendPid } from '../postgres/waits';
import { exportSnapshot, listTableDetails, takeInventory, type DatabaseInventory, type TableDetails } from '../postgres/snapshot';
import { recordBase, type DumpContext } from './dump';
import { DumpWatch } from './dump-watch';

/**
 * A parts-format backup (parts-v1, see src/parts/part-names.ts), in one exported snapshot:
 *   1. list the tables and plan their parts (large tables split by block ranges), lock them (ACCESS SHARE);
 *   2. at once: pg_dump -Fc (schema, sequences, large objects; no rows of the part tables) → archive
 *      part, BACKUP_PARALLEL_JOBS sessions that imported the snapshot copying the table parts (largest
 *      first), and the inventory (sizes, checksums of critical tables) on the snapshot session;
 *   3. the globals part (roles and tablespaces the database uses).
 * Each part streams through compression and its own encryption into a temporary object published
 * when complete: no plaintext on disk, memory bounded by the streams' buffers. Any failure stops
 * every lane, removes every temporary object and every part this attempt published, and names what failed.
 */
export async function dumpParts(context: DumpContext): Promise<DumpRecord> {
  const { config, db, request, hooks, storage, conn, key } = context;
  const id = request.backupId;
  const ext = FILE_EXTENSION[config.compression.algorithm];
  const startedAt = new Date();
  const writers: PartWriter[] = [];
  const published: string[] = [];
  let partsTotal = 0;
  const totals = () => {
    let rawBytes = 0;
    let storedBytes = 0;
    for (const w of writers) {
      rawBytes += w.raw.bytes;
      storedBytes += w.stored.bytes;
    }
    return { rawBytes, storedBytes, parts: { done: published.length, total: partsTotal } };
  };

  hooks.onProgress?.({ phase: 'connecting', rawBytes: 0, storedBytes: 0 });
  const client = await connect(conn);
  let sessions: SnapshotSessions | undefined;
  let dump: ReturnType<typeof startPgDump> | undefined;
  let failed = false;
  const watch = new DumpWatch(config, conn, client, hooks, totals, () => sessions?.pids() ?? []);
  // A cancelled or stalled dump stops at once, even while the snapshot session waits on the server (a lock).
  const stopSnapshotSession = () => closeSession({ client }, { now: true });
  watch.signal.addEventListener('abort', stopSnapshotSession, { once: true });
  try {
    const snapshotId = await exportSnapshot(client).catch((err) => {
      throw classifyPgError(err, conn.label);
    });
    await watch.limitLockWaits();
    // The snapshot session waits while the others work: no server timeout may end it (and the snapshot) meanwhile.
    await client.query("SELECT set_config('statement_timeout', '0', true), set_config('idle_in_transaction_session_timeout', '0', true), set_config('application_name', $1, false)", [watch.sessionName]);
    const server = await serverFacts(client);
    if (server.versionNum < 100000) {
      throw new LifelineError('UnsupportedServer', `${conn.label} runs PostgreSQL ${server.versionNum}: the parts format needs PostgreSQL 10 or newer`, {
        hint: 'set BACKUP_FORMAT=stream (one pg_dump archive) for this server',
      });
    }
    const level = chooseLevel(config.compression.algorithm, server.databaseBytes, config.compression.level);
    const withData = request.type !== 'schema-only';
    const tables = await listTableDetails(client);
    const partTables = withData ? tables.filter((t) => t.kind === 'table') : [];
    const planned = planParts(partTables, { partBytes: config.backup.partBytes, blockBytes: server.blockBytes, tidRangeScans: server.versionNum >= 140000 });
    partsTotal = planned.length + 2;
    // Held until the end: no table can be dropped or rewritten while the sessions copy it.
    await lockTables(client, partTables);
    await refuseRewrittenTables(client, partTables);

    const writer = (name: string, objectKey: string) => {
      const w = new PartWriter({ storage, key: objectKey, backupId: id, name, dataKey: key.plaintext, compression: { algorithm: config.compression.algorithm, level, threads: 1 } });
      writers.push(w);
      return w;
    };
    const stored = async (w: PartWriter, write: Promise<WrittenPart>): Promise<WrittenPart> => {
      const result = await write;
      published.push(w.target.key);
      return result;
    };

    const archiveKey = dataKey(db.name, id, ext);
    let archive: WrittenPart | undefined;
    let inventory: DatabaseInventory | undefined;
    const copied = new Map<string, WrittenPart & { rows: number }>();
    sessions = new SnapshotSessions(conn, snapshotId, watch.lockWaitSeconds, watch.sessionName);
    const lanes = sessions;

    const dumpArchive = async (signal: AbortSignal) => {
      dump = startPgDump({
        conn,
        snapshotId,
        type: request.type,
        lockWaitSeconds: watch.lockWaitSeconds,
        applicationName: watch.applicationName,
        excludeTableData: partTables,
        // The patterns are UTF-8 (and the parts' COPY text is too).
        encoding: 'UTF8',
        signal,
      });
      const w = writer(ARCHIVE_PART, archiveKey);
      const written = await w.write([dump.output], signal);
      // A pg_dump archive starts with its 5-byte magic: less is no archive, whatever pg_dump's status said.
      if (written.rawBytes < 5) {
        await storage.delete(archiveKey).catch(() => undefined);
        throw new LifelineError('PgDumpFailed', `pg_dump of ${conn.label} exited successfully but its archive holds ${written.rawBytes} bytes${dump.proc.stderr() ? `: ${dump.proc.stderr()}` : ''}`, { retryable: true });
      }
      published.push(archiveKey);
      archive = written;
    };
    const copyPart = (part: PlannedPart, signal: AbortSignal) =>
      lanes
        .use(async (session) => {
          const rows = new RowCounter();
          const w = writer(part.name, partObjectKey(db.name, id, part.name, ext));
          const event = (phase: 'started' | 'stored') => hooks.onPart?.({ part: part.name, table: qualifiedName(part.table), phase, pid: session.pid, at: Date.now() });
          event('started');
          const result = await stored(w, w.write([copyOut(session, copyToSql(part.table, part.range)), rows], signal));
          copied.set(part.name, { ...result, rows: rows.rows });
          event('stored');
        })
        .catch((err) => {
          throw signal.aborted ? err : partError(err, part, conn.label);
        });
    const copyTables = async (signal: AbortSignal) => {
      await runPool(planned, config.parallelJobs, copyPart, signal);
      lanes.closeAll({ now: false });
    };
    const takeStock = async (signal: AbortSignal) => {
      inventory = await untilAborted(
        takeInventory(client, { withData, countRows: false, criticalTables: db.drill.criticalTables }).catch((err) => {
          throw classifyPgError(err, conn.label);
        }),
        signal,
      );
    };
    await runPool([dumpArchive, copyTables, takeStock], 3, (task, signal) => task(signal), watch.signal);

    const globals = writer(GLOBALS_PART, partObjectKey(db.name, id, GLOBALS_PART, ext));
    const globalsJson = Buffer.from(JSON.stringify(await captureGlobals(client).catch((err) => Promise.reject(named(err, 'reading the roles and tablespaces the database uses (globals part)', conn.label)))));
    const globalsPart = await stored(globals, globals.write([Readable.from([globalsJson])], watch.signal));
    hooks.onProgress?.({ phase: 'storing', ...totals() });

    const parts: PartRecord[] = [
      { name: ARCHIVE_PART, kind: 'archive', ...recordOf(archive!) },
      { name: GLOBALS_PART, kind: 'globals', ...recordOf(globalsPart) },
      ...[...copied.entries()]
        .map(([name, p]) => ({ name, kind: 'table-data' as const, tableOid: parseTablePartName(name)!.oid, rows: p.rows, ...recordOf(p) }))
        .sort((a, b) => a.tableOid - b.tableOid || a.name.localeCompare(b.name)),
    ];
    const all = [archive!, globalsPart, ...copied.values()];
    const sum = (f: (p: WrittenPart) => number) => all.reduce((n, p) => n + f(p), 0);
    return {
      ...recordBase(context, startedAt, inventory!),
      sizes: {
        databaseBytes: inventory!.databaseBytes,
        rawBytes: sum((p) => p.rawBytes),
        compressedBytes: sum((p) => p.compressedBytes),
        storedBytes: sum((p) => p.storedBytes),
      },
      sha256: archive!.sha256,
      rawSha256: archive!.rawSha256,
      compression: { algorithm: config.compression.algorithm, level },
      format: PARTS_FORMAT,
      parts,
      tables: tableCounts(tables, parts),
    };
  } catch (err) {
    failed = true;
    sessions?.closeAll({ now: true });
    closeSession({ client }, { now: true });
    const snapshotPid = backendPid(client);
    await cancelOwnSessions(conn, [...(snapshotPid === undefined ? [] : [snapshotPid]), ...(sessions?.opened ?? [])], watch.sessionName);
    // Writers remove their own temporary objects; what this attempt already published goes too.
    for (const objectKey of published) await storage.delete(objectKey).catch(() => undefined);
    if (hooks.signal?.aborted) throw hooks.signal.reason ?? err;
    throw await watch.failure(err);
  } finally {
    watch.signal.removeEventListener('abort', stopSnapshotSession);
    watch.stop();
    sessions?.closeAll({ now: failed });
    if (dump && dump.proc.child.exitCode === null && dump.proc.child.signalCode === null) dump.proc.child.kill('SIGTERM');
    // Ending the session ends its read-only snapshot transaction (and its locks); no COMMIT, which
    // would queue behind a query still running when the dump failed.
    closeSession({ client }, { now: failed });
  }
}

async function serverFacts(client: pg.Client): Promise<{ versionNum: number; blockBytes: number; databaseBytes: number }> {
  const { rows } = await client.query<{ v: string; b: string; n: string }>(
    "SELECT current_setting('server_version_num') AS v, current_setting('block_size') AS b, pg_database_size(current_database()) AS n",
  );
  return { versionNum: Number(rows[0]!.v), blockBytes: Number(rows[0]!.b), databaseBytes: Number(rows[0]!.n) };
}

/**
 * ACCESS SHARE on every table the sessions copy, taken in the snapshot session under its lock_timeout
 * (BACKUP_LOCK_WAIT_TIMEOUT). By OID: the array holds integers checked here, never a name; the
 * server turns each into the relation (regclass) itself.
 */
export async function lockTables(client: pg.Client, tables: Array<Pick<TableDetails, 'oid'>>): Promise<void> {
  if (tables.length === 0) return;
  const oids = tables.map((t) => {
    if (!Number.isSafeInteger(t.oid) || t.oid <= 0 || t.oid > 0xffffffff) throw new RangeError(`table OID ${t.oid} is not a valid OID`);
    return String(t.oid);
  });
  await client.query(`DO $lifeline$
    DECLARE t pg_catalog.oid;
    BEGIN
      FOREACH t IN ARRAY ARRAY[${oids.join(',')}]::pg_catalog.oid[] LOOP
        EXECUTE pg_catalog.format('LOCK TABLE ONLY %s IN ACCESS SHARE MODE', t::pg_catalog.regclass);
      END LOOP;
    END $lifeline$`).catch((err: { code?: string; message?: string }) => {
    if (err.code !== '53200') throw err;
    throw new LifelineError('TooManyLocks', `locking the ${tables.length} tables of the backup ran out of the server's lock table: ${err.message}`, {
      cause: err,
      hint: 'a parts backup holds two ACCESS SHARE locks per table while it runs (its snapshot session\'s and pg_dump\'s): raise max_locks_per_transaction (a server restart), or set BACKUP_FORMAT=stream',
    });
  });
}

/**
 * A table truncated or rewritten (TRUNCATE, ALTER TABLE … TYPE, VACUUM FULL) by a transaction that
 * committed after the snapshot was taken but before its lock was granted looks empty to the
 * snapshot: its COPY would find no rows, and the backup would record it empty. Once locked, nothing
 * can rewrite it any more: its storage now (pg_relation_filenode, read from the current catalog)
 * must be the one the snapshot sees (pg_class.relfilenode, read in the snapshot).
 */
export async function refuseRewrittenTables(client: pg.Client, tables: Array<Pick<TableDetails, 'oid' | 'schema' | 'name'>>): Promise<void> {
  if (tables.length === 0) return;
  const { rows } = await client.query<{ oid: string }>(
    `SELECT c.oid::pg_catalog.int8 AS oid FROM pg_catalog.pg_class c
     WHERE c.oid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) AND c.relfilenode IS DISTINCT FROM pg_catalog.pg_relation_filenode(c.oid)`,
    [tables.map((t) => String(t.oid))],
  );
  if (!rows.length) return;
  const names = rows.map((r) => qualifiedName(tables.find((t) => t.oid === Number(r.oid))!));
  throw new LifelineError('TableRewritten', `${names.join(', ')} ${names.length === 1 ? 'was' : 'were'} truncated or rewritten while the backup waited for ${names.length === 1 ? 'its lock' : 'their locks'}: the backup's snapshot would see ${names.length === 1 ? 'it' : 'them'} empty`, {
    retryable: true,
    hint: 'the backup is retried and will see the new rows; if it keeps happening, schedule it away from the job that truncates or rewrites these tables',
  });
}

/** Row counts from the COPY of each part: a table's are its parts' sum, a partitioned table's its partitions' (recursively). */
export function tableCounts(tables: TableDetails[], parts: PartRecord[]): TableCount[] {
  const ofTable = new Map<number, number>();
  for (const p of parts) if (p.kind === 'table-data') ofTable.set(p.tableOid!, (ofTable.get(p.tableOid!) ?? 0) + p.rows!);
  const children = new Map<number, TableDetails[]>();
  for (const t of tables) if (t.parentOid !== undefined) children.set(t.parentOid, [...(children.get(t.parentOid) ?? []), t]);
  const rowsOf = (t: TableDetails, depth = 0): number => {
    if (t.kind === 'table') return ofTable.get(t.oid) ?? 0;
    if (depth > 1000) throw new LifelineError('IntegrityError', `the partitions of ${qualifiedName(t)} nest more than 1000 deep`);
    return (children.get(t.oid) ?? []).reduce((n, c) => n + rowsOf(c, depth + 1), 0);
  };
  return tables.map((t) => ({
    schema: t.schema,
    name: t.name,
    kind: t.kind,
    rows: rowsOf(t),
    oid: t.oid,
    ...(t.parentOid !== undefined && { parentOid: t.parentOid }),
    columns: t.columns,
  }));
}

function recordOf(p: WrittenPart): Pick<PartRecord, 'rawBytes' | 'storedBytes' | 'sha256' | 'rawSha256'> {
  return { rawBytes: p.rawBytes, storedBytes: p.storedBytes, sha256: p.sha256, rawSha256: p.rawSha256 };
}

/** A part that failed, named: which table, which part, what went wrong. */
function partError(err: unknown, part: PlannedPart, label: string): LifelineError {
  const range = part.range ? `, blocks ${part.range.fromBlock}–${part.range.toBlock ?? 'end'}` : '';
  return named(err, `copying the rows of ${qualifiedName(part.table)} (part ${part.name}${range})`, label);
}

/** An error that says which step failed, keeping its code, retryability and hint. */
function named(err: unknown, what: string, label: string): LifelineError {
  const classified = err instanceof LifelineError ? err : classifyPgError(err, label);
  return new LifelineError(classified.code, `${what} failed: ${classified.message}`, {
    retryable: classified.retryable,
    hint: classified.hint,
    cause: err,
    details: classified.details,
  });
}

/** The promise, or the signal's reason as soon as it aborts (the work itself is stopped by its caller). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
