import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { qualifiedName, type Manifest, type TableCount } from '../catalog/manifest';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { keyringFor } from '../crypto/keys';
import { IntegrityError, LifelineError } from '../errors';
import { checkWhole, openBackup } from '../backup/read-backup';
import type { BackupStorage } from '../storage/storage';
import { feedAndWait, processInput, processOutput, spawnChild } from '../pipeline/child-process';
import { runPipeline } from '../pipeline/run';
import { pgTool, requireSafeScriptOutput } from '../postgres/binaries';
import { tableDataOf } from '../postgres/pg-restore-list';
import { resolveConnection, SAFE_SEARCH_PATH_VALUE, sessionEnv, withConnection, type ResolvedConnection } from '../postgres/connection';
import { forceGuardRefusal, IDENTITY_DIGEST_SQL } from './server-identity';
import { backupTables } from './backup-tables';
import { readToc } from './toc';

export interface TablesRestore {
  /** Where the backup is read from (local repository or a destination). */
  storage: BackupStorage;
  manifest: Manifest;
  target: DatabaseConfig;
  /** "schema.table" names, already checked against the backup. */
  tables: string[];
  signal?: AbortSignal;
  /** Stored bytes read so far, every 2 s: the whole file is read (and authenticated) before COMMIT. */
  onProgress?: (bytes: number) => void;
  /** Names psql's session on the server (PGAPPNAME), so that a stalled restore can be diagnosed. */
  applicationName?: string;
  /** A forced restore to a URL: forceGuard's digests, checked in psql's own session before anything changes. */
  refuseIdentities?: string[];
}

/**
 * The psql script is built from constant SQL and integer OIDs only: no name from the database ever
 * becomes script text (a table named `$x$\! cmd` would otherwise end a dollar quote and run a psql
 * meta-command). Tables are addressed on the server as `oid::regclass`.
 */
function oidArray(oids: number[]): string {
  return `ARRAY[${oids.map((o) => String(Math.trunc(o))).join(', ')}]::oid[]`;
}

function doBlock(body: string): string {
  const tag = `$lifeline_${randomBytes(8).toString('hex')}$`;
  return `DO ${tag}\n${body}\n${tag};`;
}

/**
 * The fixed SQL runs with pg_catalog alone on the search path and names every function and operator
 * with its schema: a database owner's `format(text, regclass)` in a schema of theirs, put first by
 * ALTER DATABASE ... SET search_path, never runs with the restoring role.
 */
const SAFE_PATH = `SELECT pg_catalog.set_config('search_path', '${SAFE_SEARCH_PATH_VALUE}', false);`;

const GUARD_MESSAGE = 'lifeline: forced restore refused on this session';

/**
 * A forced restore must not act on a configured database that refuses force, however the URL reached
 * it: the session's own identity is compared with digests computed in Node (hex digits only).
 */
function guardSql(digests: string[] | undefined): string {
  if (!digests?.length) return '';
  for (const d of digests) if (!/^[0-9a-f]{64}$/.test(d)) throw new LifelineError('InvalidInput', 'an identity digest is not 64 hex digits');
  return doBlock(`BEGIN
  IF ${IDENTITY_DIGEST_SQL} OPERATOR(pg_catalog.=) ANY(ARRAY[${digests.map((d) => `'${d}'`).join(', ')}]::pg_catalog.text[]) THEN
    RAISE EXCEPTION '${GUARD_MESSAGE}';
  END IF;
END`);
}

/**
 * Before the rows are loaded: no triggers and no foreign-key cascades fire (session_replication_role),
 * so emptying `users` does not delete the `accounts` that reference it.
 */
function beforeSql(oids: number[], digests?: string[]): string {
  return `${SAFE_PATH}
${guardSql(digests)}
SET session_replication_role = replica;
${doBlock(`DECLARE t oid;
BEGIN
  FOREACH t IN ARRAY ${oidArray(oids)} LOOP
    EXECUTE pg_catalog.format('DELETE FROM %s', t::pg_catalog.regclass);
  END LOOP;
END`)}`;
}

/**
 * After: every foreign key to or from the restored tables must hold, or the transaction rolls back.
 * Keys compare with the constraint's own equality operators (conpfeqop), named with their schema.
 */
function afterSql(oids: number[]): string {
  const list = oidArray(oids);
  return `${SAFE_PATH}
SET session_replication_role = origin;
${doBlock(`DECLARE fk record; bad bigint;
BEGIN
  FOR fk IN
    SELECT c.conname, c.conrelid::pg_catalog.regclass AS child, c.confrelid::pg_catalog.regclass AS parent,
      (SELECT pg_catalog.string_agg(pg_catalog.format('p.%I OPERATOR(%I.%s) c.%I', pa.attname, ons.nspname, o.oprname, ca.attname), ' AND ')
         FROM ROWS FROM (pg_catalog.unnest(c.conkey), pg_catalog.unnest(c.confkey), pg_catalog.unnest(c.conpfeqop)) AS k(ck, pk, op)
         JOIN pg_catalog.pg_attribute ca ON ca.attrelid OPERATOR(pg_catalog.=) c.conrelid AND ca.attnum OPERATOR(pg_catalog.=) k.ck
         JOIN pg_catalog.pg_attribute pa ON pa.attrelid OPERATOR(pg_catalog.=) c.confrelid AND pa.attnum OPERATOR(pg_catalog.=) k.pk
         JOIN pg_catalog.pg_operator o ON o.oid OPERATOR(pg_catalog.=) k.op
         JOIN pg_catalog.pg_namespace ons ON ons.oid OPERATOR(pg_catalog.=) o.oprnamespace) AS joins,
      (SELECT pg_catalog.string_agg(pg_catalog.format('c.%I IS NOT NULL', ca.attname), ' AND ')
         FROM pg_catalog.unnest(c.conkey) AS k(ck)
         JOIN pg_catalog.pg_attribute ca ON ca.attrelid OPERATOR(pg_catalog.=) c.conrelid AND ca.attnum OPERATOR(pg_catalog.=) k.ck) AS present
    FROM pg_catalog.pg_constraint c
    WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND c.conparentid OPERATOR(pg_catalog.=) 0
      AND (c.conrelid OPERATOR(pg_catalog.=) ANY(${list}) OR c.confrelid OPERATOR(pg_catalog.=) ANY(${list}))
  LOOP
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)', fk.child, fk.present, fk.parent, fk.joins) INTO bad;
    IF bad OPERATOR(pg_catalog.>) 0 THEN
      RAISE EXCEPTION 'lifeline: the restore would break foreign key % on %: % row(s) would reference rows missing from %; nothing was changed', fk.conname, fk.child, bad, fk.parent;
    END IF;
  END LOOP;
END`)}`;
}

/** The target's OIDs of the tables, looked up by exact name with bind parameters. */
async function targetOids(conn: ResolvedConnection, tables: TableCount[]): Promise<number[]> {
  return withConnection(conn, async (client) => {
    const oids: number[] = [];
    for (const t of tables) {
      const { rows } = await client.query<{ oid: string }>(
        `SELECT c.oid::int8 AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'`,
        [t.schema, t.name],
      );
      if (!rows[0]) {
        throw new LifelineError('UnknownTable', `${conn.label} has no table ${qualifiedName(t)} to restore the rows of`, {
          hint: 'a table restore replaces rows of existing tables; restore in full mode to recreate the schema',
        });
      }
      oids.push(Number(rows[0].oid));
    }
    return oids;
  });
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
  const tables = backupTables(r.manifest, r.tables);
  const toc = await readToc(storage, r.manifest, keys);
  const entries = tables.map((t) => {
    const entry = tableDataOf(toc, t, r.manifest.tables);
    if (!entry) throw new IntegrityError(`backup ${r.manifest.id} holds no data for ${qualifiedName(t)}`);
    return entry;
  });
  await requireSafeScriptOutput(pgTool('pg_restore'));
  const conn = resolveConnection(r.target);
  const oids = await targetOids(conn, tables);
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
        stderr.includes(GUARD_MESSAGE) ? forceGuardRefusal(conn.label) : new LifelineError('RestoreFailed', `restoring ${r.tables.join(', ')} into ${conn.label} failed and was rolled back (status ${code}): ${stderr}`, {
          hint: /session_replication_role/.test(stderr)
            ? 'the restoring role needs: GRANT SET ON PARAMETER session_replication_role TO <role> (PostgreSQL 15+), or superuser'
            : undefined,
        }),
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
