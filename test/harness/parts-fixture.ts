/**
 * A database that exercises every corner of the parts format (issue 11): several schemas (one named
 * like the issue's `"Sales Q1"`, one with a hostile name), a partitioned table with partitions in
 * three schemas and a default partition, an inheritance child (COPY … FROM ONLY), large objects (one
 * of 3 MiB of incompressible bytes, so the archive part spans several encryption chunks), sequences
 * moved on, materialized views (one never populated), a table with a generated and a dropped column,
 * foreign keys between schemas, an unlogged and an empty table, and a table several times larger
 * than the 1 MiB part size the tests configure. Values hold NULLs, backslashes, tabs, CR/LF, `\.`,
 * `\N` and non-ASCII. Seeded with generate_series on the server: a second or two.
 * Built with quoteIdent and bind parameters only.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgClientConfig, quoteIdent } from '../../src/postgres/connection';
import { contentOf } from './compare';
import { query } from './fixtures';
import { HOSTILE } from './hostile-names';
import type { TestServers } from './servers';

const q = quoteIdent;
const qualified = (schema: string, name: string) => `${q(schema)}.${q(name)}`;

/** The environment every parts test runs with: two jobs, and parts small enough that one table needs several. */
export const PARTS_ENV = { BACKUP_FORMAT: 'parts', BACKUP_PARALLEL_JOBS: '2', BACKUP_PART_SIZE: '1MiB' } as const;
export const PART_BYTES = 1024 * 1024;

export const SALES = 'Sales Q1';
export const ODD = HOSTILE.schemas.quotes;

/** The tables the fixture makes, as [schema, name]. */
export const PARTS_TABLES = {
  accounts: ['ledger', 'accounts'],
  /** Partitioned: four partitions, the default one in the hostile schema. */
  orders: [SALES, 'Order items'],
  ordersPartitions: [
    [SALES, 'Order items 1'],
    ['ledger', 'part "p" 2 \\!'],
    [SALES, 'Order items 3'],
    [ODD, 'Order items default'],
  ],
  /** Larger than several parts; generated and dropped columns, hostile values. */
  big: [ODD, 'events "big" $tag$ \\! %s'],
  documents: ['ledger', 'documents'],
  notes: ['ledger', 'notes'],
  notesChild: ['ledger', 'notes 2025'],
  empty: ['public', 'empty'],
  cache: ['public', 'cache'],
} as const satisfies Record<string, readonly [string, string] | ReadonlyArray<readonly [string, string]>>;

/** pg_dump's spelling of the partitioned parent, as an operator types it for `--tables`. */
export const ORDERS_PG_DUMP_SPELLING = '"Sales Q1"."Order items"';

export interface PartsDatabase {
  /** The PostgreSQL database's name. */
  database: string;
  owner: string;
  password: string;
  /** Owner URL (with its password), what the configuration holds. */
  url: string;
  /** Superuser URL of the same database, for the tests' own checks. */
  adminUrl: string;
}

export interface PartsFixtureOptions {
  /** Heap size the big table reaches at least (default 6 MiB: six parts of 1 MiB). */
  bigTableBytes?: number;
}

/**
 * Creates and seeds the database `name` owned by `<name>_owner`, a password role that may do what
 * restores need (create databases, end sessions, bypass FK cascades; README).
 */
export async function createPartsDatabase(servers: TestServers, name: string, options: PartsFixtureOptions = {}): Promise<PartsDatabase> {
  const owner = `${name}_owner`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const url = await servers.cluster.createDatabase(name, owner, password);
  await servers.cluster.sql(`ALTER ROLE ${q(owner)} CREATEDB`);
  await servers.cluster.sql(`GRANT pg_signal_backend TO ${q(owner)}`);
  await servers.cluster.sql(`GRANT SET ON PARAMETER session_replication_role TO ${q(owner)}`);
  const db = new pg.Client(pgClientConfig(url));
  await db.connect();
  try {
    await seed(db, options.bigTableBytes ?? 6 * PART_BYTES);
  } finally {
    await db.end();
  }
  return { database: name, owner, password, url, adminUrl: servers.cluster.adminUrl(name) };
}

/** Text values that COPY's text format must escape, cycled through by `g % 10` (NULL included). */
const HOSTILE_VALUE = `CASE g % 10
  WHEN 0 THEN NULL
  WHEN 1 THEN E'tab\\there\\tand\\tmore'
  WHEN 2 THEN E'back\\\\slash \\\\N \\\\. \\\\\\\\'
  WHEN 3 THEN E'new\\nline\\r\\ncrlf'
  WHEN 4 THEN E'\\\\.\\nafter an end-of-data marker'
  WHEN 5 THEN 'ünïcødé 😀 ' || g
  WHEN 6 THEN ''
  WHEN 7 THEN E'\\\\N'
  WHEN 8 THEN $$'quoted' "double" $lifeline$ %s$$
  ELSE md5(g::text) END`;

async function seed(db: pg.Client, bigTableBytes: number): Promise<void> {
  const t = PARTS_TABLES;
  const [big, accounts, orders, documents, notes, notesChild, empty, cache] = [t.big, t.accounts, t.orders, t.documents, t.notes, t.notesChild, t.empty, t.cache].map(
    ([s, n]) => qualified(s, n),
  ) as [string, string, string, string, string, string, string, string];
  for (const schema of ['ledger', SALES, ODD]) await db.query(`CREATE SCHEMA ${q(schema)}`);
  const state = qualified(SALES, 'order state');
  await db.query(`CREATE TYPE ${state} AS ENUM ('new', 'pai''d', E'sh\\\\ipped', 'ünï')`);

  // Sequences moved on: one called, one set but not yet called (its next value is 77 itself).
  const invoiceNo = qualified('ledger', 'invoice_no');
  const oddSeq = qualified(ODD, HOSTILE.sequence);
  await db.query(`CREATE SEQUENCE ${invoiceNo} START 1000`);
  await db.query(`SELECT setval($1, 424242, true)`, [invoiceNo]);
  await db.query(`CREATE SEQUENCE ${oddSeq} INCREMENT 7`);
  await db.query(`SELECT setval($1, 77, false)`, [oddSeq]);

  await db.query(`CREATE TABLE ${accounts} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, opened date, note text)`);
  await db.query(`INSERT INTO ${accounts} (name, opened, note) SELECT 'account ' || g, date '2020-01-01' + g, ${HOSTILE_VALUE} FROM generate_series(1, 2000) g`);
  // An identity sequence past its last row (a gap the restore must keep).
  await db.query(`SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, 5)`, [accounts]);

  // Partitioned, with partitions in three schemas and a default one; FK into another schema.
  await db.query(
    `CREATE TABLE ${orders} (id bigint NOT NULL, account_id bigint NOT NULL REFERENCES ${accounts}(id), state ${state}, amount numeric(12,2), note text, PRIMARY KEY (id)) PARTITION BY RANGE (id)`,
  );
  const bounds = ['FROM (1) TO (10001)', 'FROM (10001) TO (20001)', 'FROM (20001) TO (30001)', 'DEFAULT'];
  for (const [i, [s, n]] of t.ordersPartitions.entries()) {
    await db.query(`CREATE TABLE ${qualified(s, n)} PARTITION OF ${orders} ${bounds[i] === 'DEFAULT' ? 'DEFAULT' : `FOR VALUES ${bounds[i]}`}`);
  }
  await db.query(
    `INSERT INTO ${orders} SELECT g, 1 + g % 2000, (enum_range(NULL::${state}))[1 + g % 4], round((g * 7 % 100000) / 100.0, 2), ${HOSTILE_VALUE}
     FROM generate_series(1, 34000) g`,
  );
  await db.query(`CREATE INDEX ${q(HOSTILE.index)} ON ${orders} (account_id)`);

  // The big table: a dropped column between live ones, a generated column, every kind of value.
  await db.query(
    `CREATE TABLE ${big} (id bigint PRIMARY KEY, obsolete text, account_id bigint NOT NULL REFERENCES ${accounts}(id), ${q('col\nnewline')} text,
       amount numeric(12,2), doubled numeric GENERATED ALWAYS AS (amount * 2) STORED, tags text[], payload bytea, at timestamptz, doc jsonb)`,
  );
  const rowsPerMiB = 2500; // about 420 bytes a row on disk
  const rows = Math.ceil((bigTableBytes / PART_BYTES) * rowsPerMiB * 1.1);
  await db.query(
    `INSERT INTO ${big} (id, obsolete, account_id, ${q('col\nnewline')}, amount, tags, payload, at, doc)
     SELECT g, repeat('gone', 8), 1 + g % 2000, ${HOSTILE_VALUE}, CASE WHEN g % 13 = 0 THEN NULL ELSE round((g * 37 % 1000000) / 100.0, 2) END,
            ARRAY['a', NULL, E'tab\\t', E'quote"', 'ü' || g], decode(md5(g::text) || md5((g + 1)::text) || md5((-g)::text), 'hex'),
            timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute', jsonb_build_object('g', g, 'text', ${HOSTILE_VALUE}, 'pad', repeat(md5(g::text), 3))
     FROM generate_series(1, $1::int) g`,
    [rows],
  );
  await db.query(`ALTER TABLE ${big} DROP COLUMN obsolete`);
  const [size] = (await db.query<{ n: string }>(`SELECT pg_relation_size($1) AS n`, [big])).rows;
  if (Number(size!.n) < bigTableBytes) throw new Error(`the big table is ${size!.n} bytes, less than the ${bigTableBytes} asked for: raise rowsPerMiB`);

  // Large objects: text, 3 MiB of incompressible bytes (md5 output), empty; one referenced from a table.
  await db.query(
    `CREATE TABLE ${documents} (id int PRIMARY KEY, name text, doc oid)`,
  );
  await db.query(
    `INSERT INTO ${documents} VALUES
       (1, 'greeting', lo_from_bytea(0, convert_to(E'hello\\n\\\\. ünï', 'UTF8'))),
       (2, 'random', lo_from_bytea(0, (SELECT decode(string_agg(md5(g::text || 'lo'), '' ORDER BY g), 'hex') FROM generate_series(1, 196608) g))),
       (3, 'empty', lo_from_bytea(0, ''))`,
  );

  // Inheritance (not partitioning): each table's rows are its own (COPY … FROM ONLY).
  await db.query(`CREATE TABLE ${notes} (id int, body text)`);
  await db.query(`CREATE TABLE ${notesChild} (extra text) INHERITS (${notes})`);
  await db.query(`INSERT INTO ${notes} SELECT g, ${HOSTILE_VALUE} FROM generate_series(1, 300) g`);
  await db.query(`INSERT INTO ${notesChild} SELECT g, ${HOSTILE_VALUE}, 'child ' || g FROM generate_series(301, 500) g`);

  await db.query(`CREATE TABLE ${empty} (id int PRIMARY KEY, v text)`);
  await db.query(`CREATE UNLOGGED TABLE ${cache} (k text PRIMARY KEY, v jsonb)`);
  await db.query(`INSERT INTO ${cache} SELECT 'key ' || g, jsonb_build_object('v', ${HOSTILE_VALUE}) FROM generate_series(1, 200) g`);

  // Materialized views: one with data (and an index), one never populated.
  await db.query(
    `CREATE MATERIALIZED VIEW ${qualified('ledger', 'account totals')} AS SELECT account_id, count(*) AS n, sum(amount) AS total FROM ${big} GROUP BY account_id WITH DATA`,
  );
  await db.query(`CREATE UNIQUE INDEX ON ${qualified('ledger', 'account totals')} (account_id)`);
  await db.query(`CREATE MATERIALIZED VIEW ${qualified(SALES, 'unpopulated')} AS SELECT id, note FROM ${orders} WITH NO DATA`);
  await db.query(`ANALYZE`);
}

/**
 * A table's key in contentOf's result: format('%I.%I'), which quotes a name only when it needs it
 * (none of the fixture's plain names is a keyword).
 */
export function contentKey([schema, name]: readonly [string, string]): string {
  const ident = (s: string) => (/^[a-z_][a-z0-9_$]*$/.test(s) ? s : q(s));
  return `${ident(schema)}.${ident(name)}`;
}

/** Every sequence's state: last value and whether it was called (what nextval gives next). */
export async function sequencesOf(url: string): Promise<Record<string, string>> {
  const seqs = await query<{ s: string; n: string }>(
    url,
    `SELECT n.nspname AS s, c.relname AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' ORDER BY 1, 2`,
  );
  const out: Record<string, string> = {};
  for (const { s, n } of seqs) {
    const [row] = await query<{ v: string; c: boolean }>(url, `SELECT last_value::text AS v, is_called AS c FROM ${qualified(s, n)}`);
    out[`${s}.${n}`] = `${row!.v}${row!.c ? ' (called)' : ''}`;
  }
  return out;
}

/** Every materialized view: populated or not, and a digest of its rows. */
export async function matviewsOf(url: string): Promise<Record<string, string>> {
  const views = await query<{ s: string; n: string; p: boolean }>(
    url,
    `SELECT n.nspname AS s, c.relname AS n, c.relispopulated AS p FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm' ORDER BY 1, 2`,
  );
  const out: Record<string, string> = {};
  for (const { s, n, p } of views) {
    if (!p) {
      out[`${s}.${n}`] = 'not populated';
      continue;
    }
    const [row] = await query<{ n: string; h: string }>(
      url,
      `SELECT count(*) AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS h FROM ${qualified(s, n)} x`,
    );
    out[`${s}.${n}`] = `${row!.n} rows ${row!.h}`;
  }
  return out;
}

/** Everything a restore must give back: every table's rows, large objects, sequences, materialized views. */
export async function everythingIn(url: string) {
  return { tables: await contentOf(url), sequences: await sequencesOf(url), matviews: await matviewsOf(url) };
}

/** Databases whose names say they are a restore's scratch or a replaced copy (`<name>_restore_<ts>`). */
export async function scratchDatabases(servers: TestServers, prefix: string): Promise<string[]> {
  const rows = await servers.cluster.sql<{ datname: string }>(`SELECT datname FROM pg_database ORDER BY 1`);
  return rows.map((r) => r.datname).filter((n) => n.startsWith(`${prefix}_restore_`));
}
