import type pg from 'pg';
import type { TableCount } from '../catalog/manifest';
import { quoteIdent } from './connection';

export interface DatabaseInventory {
  serverVersion: string;
  databaseBytes: number;
  tables: TableCount[];
  largeObjects: number;
  /** `schema.table` → checksum of its rows, for the tables a drill checks row by row. */
  checksums: Record<string, string>;
}

/** Which relations are the database's user tables: not catalogs, TOAST, temporary tables or extension members. */
const USER_TABLES = `
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`;

/** User tables (not extension members), with partitioned parents marked. */
const TABLES_SQL = `
  SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind
  ${USER_TABLES}
  ORDER BY 2, 3`;

/**
 * The same tables with what a parts backup needs: the partition parent, the columns COPY reads
 * (not dropped, not generated: a generated column is computed again on restore), in attnum order,
 * and sizes (the main fork, which block ranges divide, and the whole table with its TOAST).
 */
const tableDetailsSql = (serverVersionNum: number) => `
  SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
    (SELECT i.inhparent::int8 FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition) AS parent_oid,
    ARRAY(SELECT a.attname::text FROM pg_attribute a
          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped${serverVersionNum >= 120000 ? " AND a.attgenerated = ''" : ''}
          ORDER BY a.attnum) AS columns,
    pg_relation_size(c.oid)::int8 AS main_bytes, pg_table_size(c.oid)::int8 AS table_bytes
  ${USER_TABLES}
  ORDER BY 2, 3`;

export interface TableDetails extends Omit<TableCount, 'rows'> {
  oid: number;
  columns: string[];
  /** Main fork: what ctid block ranges divide. */
  mainBytes: number;
  /** Main fork, TOAST and maps: what a part's size is measured against. */
  tableBytes: number;
}

/**
 * Opens a REPEATABLE READ transaction and exports its snapshot, so that pg_dump (`--snapshot`) and
 * the row counts recorded in the manifest see exactly the same data. Keep it open until pg_dump ends.
 */
export async function exportSnapshot(client: pg.Client): Promise<string> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const { rows } = await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
  return rows[0]!.id;
}

export async function listTables(client: pg.Client): Promise<Array<Omit<TableCount, 'rows'>>> {
  const { rows } = await client.query<{ oid: string; schema: string; name: string; kind: string }>(TABLES_SQL);
  return rows.map((r) => ({ schema: r.schema, name: r.name, kind: r.kind === 'p' ? 'partitioned' : 'table', oid: Number(r.oid) }));
}

export async function listTableDetails(client: pg.Client): Promise<TableDetails[]> {
  const version = await client.query<{ n: string }>("SELECT current_setting('server_version_num') AS n");
  const { rows } = await client.query<{ oid: string; schema: string; name: string; kind: string; parent_oid: string | null; columns: string[]; main_bytes: string; table_bytes: string }>(
    tableDetailsSql(Number(version.rows[0]!.n)),
  );
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    kind: r.kind === 'p' ? 'partitioned' : 'table',
    oid: Number(r.oid),
    ...(r.parent_oid !== null && { parentOid: Number(r.parent_oid) }),
    columns: r.columns,
    mainBytes: Number(r.main_bytes),
    tableBytes: Number(r.table_bytes),
  }));
}

export async function countRows(client: pg.Client, table: Omit<TableCount, 'rows'>): Promise<number> {
  // A partitioned parent holds no rows itself: count it through its partitions.
  const only = table.kind === 'table' ? 'ONLY ' : '';
  const { rows } = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${only}${quoteIdent(table.schema)}.${quoteIdent(table.name)}`,
  );
  return Number(rows[0]!.n);
}

/**
 * MD5 over every row's text form, in a stable order: equal on two databases exactly when the
 * table holds the same rows. Computed at backup time (in the dump's snapshot) and again by drills.
 */
export async function tableChecksum(client: pg.Client, table: string): Promise<string> {
  const dot = table.indexOf('.');
  const [schema, name] = dot > 0 ? [table.slice(0, dot), table.slice(dot + 1)] : ['public', table];
  const { rows } = await client.query<{ h: string }>(
    `SELECT md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS h FROM ONLY ${quoteIdent(schema)}.${quoteIdent(name)} x`,
  );
  return rows[0]!.h;
}

export interface InventoryOptions {
  /** Row counts, large objects and critical tables' checksums: not for a schema-only backup. */
  withData: boolean;
  /** count(*) of every table: only when nothing else counts them (a parts backup counts its COPY rows). */
  countRows: boolean;
  criticalTables?: string[];
}

/** Everything the manifest records about the database, read inside the exported snapshot. */
export async function takeInventory(client: pg.Client, options: InventoryOptions): Promise<DatabaseInventory> {
  const { withData, criticalTables = [] } = options;
  const withRows = withData && options.countRows;
  const version = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
  const size = await client.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n');
  const lo = await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_largeobject_metadata');
  const tables: TableCount[] = [];
  for (const table of await listTables(client)) {
    tables.push({ ...table, rows: withRows ? await countRows(client, table) : 0 });
  }
  const checksums: Record<string, string> = {};
  if (withData) for (const table of criticalTables) checksums[table] = await tableChecksum(client, table);
  return {
    serverVersion: version.rows[0]!.v.split(' ')[0]!,
    databaseBytes: Number(size.rows[0]!.n),
    tables,
    largeObjects: withData ? Number(lo.rows[0]!.n) : 0,
    checksums,
  };
}
