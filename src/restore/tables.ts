import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { qualifiedName, type Manifest, type TableCount } from '../catalog/manifest';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { keyringFor } from '../crypto/keys';
import { IntegrityError } from '../errors';
import { checkWhole, openBackup } from '../backup/read-backup';
import type { BackupStorage } from '../storage/storage';
import { feedAndWait, processInput, processOutput, spawnChild } from '../pipeline/child-process';
import { runPipeline } from '../pipeline/run';
import { isParts } from '../parts/parts-of';
import { pgTool, requireSafeScriptOutput } from '../postgres/binaries';
import { tableDataOf } from '../postgres/pg-restore-list';
import { resolveConnection, sessionEnv, withConnection } from '../postgres/connection';
import { forceGuardRefusal } from './server-identity';
import { backupTables, leafTables } from './backup-tables';
import { afterSql, beforeSql, GUARD_MESSAGE, restoreFailed, targetOids } from './table-sql';
import { restoreTableParts } from './table-parts';
import { readToc } from './toc';

export interface TablesRestore {
  /** Where the backup is read from (local repository or a destination). */
  storage: BackupStorage;
  manifest: Manifest;
  target: DatabaseConfig;
  /** The plan's names (planName), already checked against the backup: tables and partitioned parents. */
  tables: string[];
  signal?: AbortSignal;
  /** Stored bytes read so far, every 2 s: everything the restore reads is read (and authenticated) before COMMIT. */
  onProgress?: (bytes: number) => void;
  /** Names the restoring session on the server (psql's PGAPPNAME, or application_name), so that a stalled restore can be diagnosed. */
  applicationName?: string;
  /** A forced restore to a URL: forceGuard's digests, checked in the restoring session before anything changes. */
  refuseIdentities?: string[];
  /** The backend pid of the restoring session, once it exists (parts backups: one node-postgres session). */
  onSession?: (pid: number) => void;
}

/** The tables a restore names, and the ones that hold their rows (a partitioned parent's partitions). */
export interface TablesToRestore {
  /** What is emptied and checked for foreign keys: the named tables and parents, and every partition. */
  all: TableCount[];
  /** What rows are loaded into: tables that hold rows themselves. */
  leaves: TableCount[];
}

export function tablesToRestore(manifest: Manifest, names: string[]): TablesToRestore {
  const named = backupTables(manifest, names);
  const leaves = leafTables(manifest, named);
  return { all: [...new Set([...named, ...leaves])], leaves };
}

/**
 * Replaces the rows of the named tables with the backup's, in one transaction; a partitioned
 * parent is replaced with all its partitions. Either every table is replaced and every foreign key
 * holds, or nothing changes. A parts backup loads only those tables' parts over one session
 * (table-parts.ts); a single-stream backup goes through pg_restore's script and psql (below).
 */
export async function restoreTables(config: LifelineConfig, r: TablesRestore): Promise<void> {
  const tables = tablesToRestore(r.manifest, r.tables);
  if (isParts(r.manifest)) return restoreTableParts(config, r, tables);
  return restoreFromStream(config, r, tables);
}

/**
 * A single-stream backup: decrypt → decompress → `pg_restore -L <those TABLE DATA entries> -f -`
 * → psql. We write BEGIN and, only once the whole stream has arrived intact, COMMIT: a failure
 * anywhere ends psql's input without COMMIT, and the server rolls everything back.
 */
async function restoreFromStream(config: LifelineConfig, r: TablesRestore, tables: TablesToRestore): Promise<void> {
  const keys = keyringFor(config);
  const storage = r.storage;
  const toc = await readToc(storage, r.manifest, keys);
  const entries = tables.leaves.map((t) => {
    const entry = tableDataOf(toc, t, r.manifest.tables);
    if (!entry) throw new IntegrityError(`backup ${r.manifest.id} holds no data for ${qualifiedName(t)}`);
    return entry;
  });
  await requireSafeScriptOutput(pgTool('pg_restore'));
  const conn = resolveConnection(r.target);
  const oids = await withConnection(conn, (client) => targetOids(client, conn.label, tables.all));
  const work = mkdtempSync(path.join(tmpdir(), 'lifeline-tables-'));
  const listFile = path.join(work, 'restore.list');
  // pg_restore reads only the leading dump id of each line. The stream cannot seek: the entries go
  // in the archive's own order.
  const inArchiveOrder = [...entries].sort((a, b) => toc.tableData.indexOf(a) - toc.tableData.indexOf(b));
  writeFileSync(listFile, inArchiveOrder.map((e) => `${e.dumpId}\n`).join(''), { mode: 0o600 });
  let ticker: NodeJS.Timeout | undefined;
  try {
    const chain = await openBackup(storage, r.manifest, keys);
    ticker = setInterval(() => r.onProgress?.(chain.stored.bytes), 2000);
    // Wired as two pipelines, not one Duplex: pg_restore stops reading once it has the selected
    // tables, and its output must still be read to the end.
    const script = spawnChild(pgTool('pg_restore'), ['--data-only', `--use-list=${listFile}`, '--file=-'], { signal: r.signal });
    const feeding = runPipeline([...chain.stages, processInput(script)], r.signal);
    const transaction = async function* (rows: AsyncIterable<Buffer>) {
      yield Buffer.from(`BEGIN;\n${beforeSql(oids, r.refuseIdentities)}\n`);
      yield* rows;
      // pg_restore has what it needs long before the end of the file: COMMIT waits until every
      // chunk has been authenticated and the whole object matches the manifest's SHA-256.
      await feeding;
      checkWhole(chain, r.manifest, `backup ${r.manifest.id}`);
      yield Buffer.from(`\n${afterSql(oids)}\nCOMMIT;\n`);
    };
    const psql = spawnChild(pgTool('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', `--dbname=${conn.safeUrl}`], {
      env: { ...sessionEnv(conn), ...(r.applicationName && { PGAPPNAME: r.applicationName }) },
      signal: r.signal,
      classify: (code, _signal, stderr) =>
        stderr.includes(GUARD_MESSAGE) ? forceGuardRefusal(conn.label) : restoreFailed(r.tables.join(', '), conn.label, `psql status ${code}: ${stderr}`),
    });
    const producing = runPipeline([processOutput(script), transaction, psql.child.stdin], r.signal);
    // A damaged backup is the cause even when pg_restore then fails on its short input.
    const both = Promise.allSettled([feeding, producing]).then(([fed, produced]) => {
      if (fed.status === 'rejected') throw fed.reason;
      if (produced.status === 'rejected') throw produced.reason;
    });
    await feedAndWait(both, psql);
  } finally {
    clearInterval(ticker);
    rmSync(work, { recursive: true, force: true });
  }
}
