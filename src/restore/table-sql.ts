import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { qualifiedName, type TableCount } from '../catalog/manifest';
import { LifelineError } from '../errors';
import { SAFE_SEARCH_PATH_VALUE } from '../postgres/connection';
import { IDENTITY_DIGEST_SQL } from './server-identity';

/**
 * The fixed SQL of a table restore, shared by the psql script (single-stream backups) and the
 * node-postgres session (parts backups). It is built from constant SQL and integer OIDs only: no
 * name from the database ever becomes script text (a table named `$x$\! cmd` would otherwise end a
 * dollar quote and run a psql meta-command). Tables are addressed on the server as `oid::regclass`.
 */
export function oidArray(oids: number[]): string {
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
export const SAFE_PATH = `SELECT pg_catalog.set_config('search_path', '${SAFE_SEARCH_PATH_VALUE}', false);`;

export const GUARD_MESSAGE = 'lifeline: forced restore refused on this session';

/**
 * A forced restore must not act on a configured database that refuses force, however the URL reached
 * it: the session's own identity is compared with digests computed in Node (hex digits only).
 */
export function guardSql(digests: string[] | undefined): string {
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
 * so emptying `users` does not delete the `accounts` that reference it. ONLY: the rows of an
 * inheritance parent's children are not the parent's (its parts hold none of them), and a
 * partitioned parent's partitions are in the list themselves.
 */
export function beforeSql(oids: number[], digests?: string[]): string {
  return `${SAFE_PATH}
${guardSql(digests)}
SET session_replication_role = replica;
${doBlock(`DECLARE t oid;
BEGIN
  FOREACH t IN ARRAY ${oidArray(oids)} LOOP
    EXECUTE pg_catalog.format('DELETE FROM ONLY %s', t::pg_catalog.regclass);
  END LOOP;
END`)}`;
}

/**
 * After: every foreign key to or from the restored tables must hold, or the transaction rolls back.
 * Keys compare with the constraint's own equality operators (conpfeqop), named with their schema.
 */
export function afterSql(oids: number[]): string {
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

/**
 * The target's OIDs of the tables (and partitioned parents), looked up by exact name and kind with
 * bind parameters. A table restore replaces rows: every table must already exist on the target.
 */
export async function targetOids(client: pg.Client, label: string, tables: readonly TableCount[]): Promise<number[]> {
  const oids: number[] = [];
  for (const t of tables) {
    const { rows } = await client.query<{ oid: string }>(
      `SELECT c.oid::pg_catalog.int8 AS oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
       WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2 AND c.relkind OPERATOR(pg_catalog.=) $3`,
      [t.schema, t.name, t.kind === 'partitioned' ? 'p' : 'r'],
    );
    if (!rows[0]) {
      throw new LifelineError('UnknownTable', `${label} has no ${t.kind === 'partitioned' ? 'partitioned table' : 'table'} ${qualifiedName(t)} to restore the rows of`, {
        hint: 'a table restore replaces rows of existing tables; restore in full mode to recreate the schema',
      });
    }
    oids.push(Number(rows[0].oid));
  }
  return oids;
}

/** What a table restore that the server refused says, with the privilege it most often lacks. */
export function restoreFailed(what: string, label: string, detail: string): LifelineError {
  return new LifelineError('RestoreFailed', `restoring ${what} into ${label} failed and was rolled back: ${detail}`, {
    hint: /session_replication_role/.test(detail)
      ? 'the restoring role needs: GRANT SET ON PARAMETER session_replication_role TO <role> (PostgreSQL 15+), or superuser'
      : undefined,
  });
}

/**
 * Transaction-local settings of a session that loads COPY text of a parts backup, as pg_restore sets
 * its own: the input formats the parts were written in (UTF-8, ISO dates, postgres intervals), no
 * timeout a role or database setting imposes on a long load, and row-level security that fails
 * instead of silently dropping rows.
 */
export const LOAD_SETTINGS_SQL = `SELECT pg_catalog.set_config('client_encoding', 'UTF8', true), pg_catalog.set_config('DateStyle', 'ISO', true),
  pg_catalog.set_config('IntervalStyle', 'postgres', true), pg_catalog.set_config('row_security', 'off', true),
  pg_catalog.set_config('statement_timeout', '0', true), pg_catalog.set_config('lock_timeout', '0', true),
  pg_catalog.set_config('idle_in_transaction_session_timeout', '0', true)`;
