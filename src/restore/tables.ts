import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { splitQualifiedName, type Manifest } from '../catalog/manifest';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { keyringFor } from '../crypto/keys';
import { LifelineError } from '../errors';
import { openBackup } from '../backup/read-backup';
import type { BackupStorage } from '../storage/storage';
import { feedAndWait, processInput, processOutput, spawnChild } from '../pipeline/child-process';
import { runPipeline } from '../pipeline/run';
import { pgTool } from '../postgres/binaries';
import { libpqEnv, quoteIdent, resolveConnection } from '../postgres/connection';
import { readToc } from './toc';

export interface TablesRestore {
  /** Where the backup is read from (local repository or a destination). */
  storage: BackupStorage;
  manifest: Manifest;
  target: DatabaseConfig;
  /** "schema.table" names, already checked against the backup. */
  tables: string[];
  signal?: AbortSignal;
}

function qualified(table: string): string {
  const { schema, name } = splitQualifiedName(table);
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * Before the rows are loaded: no triggers and no foreign-key cascades fire (session_replication_role),
 * so emptying `users` does not delete the `accounts` that reference it.
 */
function beforeSql(tables: string[]): string {
  return ['SET session_replication_role = replica;', ...tables.map((t) => `DELETE FROM ${qualified(t)};`)].join('\n');
}

/** After: every foreign key to or from the restored tables must hold, or the transaction rolls back. */
function afterSql(tables: string[]): string {
  const list = tables.map((t) => `'${qualified(t).replace(/'/g, "''")}'::regclass`).join(', ');
  return `SET session_replication_role = origin;
DO $lifeline$
DECLARE fk record; bad bigint;
BEGIN
  FOR fk IN
    SELECT c.conname, c.conrelid::regclass AS child, c.confrelid::regclass AS parent,
      (SELECT string_agg(format('c.%I = p.%I', ca.attname, pa.attname), ' AND ')
         FROM unnest(c.conkey, c.confkey) AS k(ck, pk)
         JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.ck
         JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.pk) AS joins,
      (SELECT string_agg(format('c.%I IS NOT NULL', ca.attname), ' AND ')
         FROM unnest(c.conkey) AS k(ck) JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.ck) AS present
    FROM pg_constraint c
    WHERE c.contype = 'f' AND c.conparentid = 0 AND (c.conrelid = ANY(ARRAY[${list}]) OR c.confrelid = ANY(ARRAY[${list}]))
  LOOP
    EXECUTE format('SELECT count(*) FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)', fk.child, fk.present, fk.parent, fk.joins) INTO bad;
    IF bad > 0 THEN
      RAISE EXCEPTION 'lifeline: the restore would break foreign key % on %: % row(s) would reference rows missing from %; nothing was changed', fk.conname, fk.child, bad, fk.parent;
    END IF;
  END LOOP;
END
$lifeline$;`;
}

/**
 * Replaces the rows of the named tables with the backup's, in one transaction: the stream goes
 * decrypt → decompress → `pg_restore -L <those TABLE DATA entries> -f -` → psql. We write BEGIN
 * and, only once the whole stream has arrived intact, COMMIT: a failure anywhere ends psql's input
 * without COMMIT, and the server rolls everything back. Either every table is replaced and every
 * foreign key holds, or nothing changes.
 */
export async function restoreTables(config: LifelineConfig, r: TablesRestore): Promise<void> {
  const keys = keyringFor(config);
  const storage = r.storage;
  const toc = await readToc(storage, r.manifest, keys);
  const work = mkdtempSync(path.join(tmpdir(), 'lifeline-tables-'));
  const listFile = path.join(work, 'restore.list');
  writeFileSync(listFile, r.tables.map((t) => toc.tableDataLines[t]).join('\n') + '\n', { mode: 0o600 });
  const conn = resolveConnection(r.target);
  try {
    const chain = await openBackup(storage, r.manifest, keys);
    // Wired as two pipelines, not one Duplex: pg_restore stops reading once it has the selected
    // tables, and its output must still be read to the end.
    const script = spawnChild(pgTool('pg_restore'), ['--data-only', `--use-list=${listFile}`, '--file=-']);
    const transaction = async function* (rows: AsyncIterable<Buffer>) {
      yield Buffer.from(`BEGIN;\n${beforeSql(r.tables)}\n`);
      yield* rows;
      yield Buffer.from(`\n${afterSql(r.tables)}\nCOMMIT;\n`);
    };
    const psql = spawnChild(pgTool('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', `--dbname=${conn.safeUrl}`], {
      env: libpqEnv(conn),
      classify: (code, _signal, stderr) =>
        new LifelineError('RestoreFailed', `restoring ${r.tables.join(', ')} into ${conn.label} failed and was rolled back (status ${code}): ${stderr}`, {
          hint: /session_replication_role/.test(stderr)
            ? 'the restoring role needs: GRANT SET ON PARAMETER session_replication_role TO <role> (PostgreSQL 15+), or superuser'
            : undefined,
        }),
    });
    const feeding = runPipeline([...chain.stages, processInput(script)], r.signal);
    const producing = runPipeline([processOutput(script), transaction, psql.child.stdin], r.signal);
    // A damaged backup is the cause even when pg_restore then fails on its short input.
    const both = Promise.allSettled([feeding, producing]).then(([fed, produced]) => {
      if (fed.status === 'rejected') throw fed.reason;
      if (produced.status === 'rejected') throw produced.reason;
    });
    await feedAndWait(both, psql);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
