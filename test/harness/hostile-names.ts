/**
 * A database whose every name is an attack or an edge case: spaces, both quote kinds, dollar
 * quotes (`$tag$`, `$lifeline$`), psql backslash commands (`\!`, `\gexec`, `\o`), `;`, newlines,
 * `%`, non-ASCII, 63-byte names (multi-byte too) and names that differ only in case, on schemas,
 * tables, columns, enums, indexes, sequences, functions and roles, with rows just as hostile.
 * Built with quoteIdent and bind parameters only: the fixture must not need the escaping it tests.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgClientConfig, quoteIdent } from '../../src/postgres/connection';
import type { TestServers } from './servers';

/** `$lifeline$\!\touch${IFS}<file>;#`: a psql meta-command that runs a shell if the name becomes script text. */
export function shellTableName(canaryFile: string): string {
  const name = `$lifeline$\\!\\touch\${IFS}${canaryFile};#`;
  if (Buffer.byteLength(name) > 63) throw new Error(`canary path ${canaryFile} is too long for a table name`);
  return name;
}

const q = quoteIdent;
const qualified = (schema: string, name: string) => `${q(schema)}.${q(name)}`;

/** 63 bytes, the longest name PostgreSQL keeps: 31 two-byte characters and one ASCII one. */
const LONG_MULTIBYTE = 'é'.repeat(31) + 'x';
const LONG_ASCII = 'L'.repeat(63);

export const HOSTILE = {
  schemas: {
    quotes: `we ird "schema" 'q' $tag$ ;%`,
    backslash: `Ünïcødé\n\\! \\gexec \\o /dev/null`,
    upper: 'Case',
    lower: 'case',
  },
  roles: [`role "r" 'q' $lifeline$ \\!`, 'Rôle\nnewline;%'],
  enum: { name: `mood "type" $x$`, values: ['hap py', "sa'd", '$lifeline$', '\\!', 'new\nline', '%s'] },
  sequence: `seq $tag$ ; "s"`,
  function: `fn $lifeline$ \\! ; 'f'`,
  index: `idx "q" $tag$ \\! %I`,
} as const;

/** Values that stress COPY and psql: tabs, backslashes, `\.` lines, `\N`, dollar quotes, NUL-free. */
const HOSTILE_TEXT = ['plain', 'tab\there', 'back\\slash', '\\.\nline after', '\\N', '$lifeline$\\! touch /tmp/x', "it's \"quoted\"", 'ünï 😀', '%s %I %L', ''];

export interface HostileDatabase {
  /** Owner URL (with its password). */
  url: string;
  password: string;
  owner: string;
  database: string;
  /** Every table that holds rows, as [schema, name]. */
  tables: Array<[string, string]>;
}

/**
 * Creates the hostile database (its own name hostile too) owned by a new password role, as the
 * superuser. The `\!` table name touches `canaryFile` if any shell ever runs it.
 */
export async function createHostileDatabase(servers: TestServers, label: string, canaryFile: string): Promise<HostileDatabase> {
  const suffix = randomBytes(3).toString('hex');
  const database = `${label} "db" $x$ é ${suffix}`;
  const owner = `${label}_owner_${suffix}`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const admin = new pg.Client({ connectionString: servers.cluster.adminUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE ${q(owner)} LOGIN CREATEDB PASSWORD ${pgLiteral(password)}`);
    await admin.query(`GRANT pg_signal_backend TO ${q(owner)}`);
    await admin.query(`GRANT SET ON PARAMETER session_replication_role TO ${q(owner)}`);
    for (const role of HOSTILE.roles) {
      const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      if (!exists.rowCount) await admin.query(`CREATE ROLE ${q(role)}`);
    }
    await admin.query(`CREATE DATABASE ${q(database)} OWNER ${q(owner)} TEMPLATE template0`);
  } finally {
    await admin.end();
  }
  const url = new URL(servers.cluster.adminUrl());
  url.username = owner;
  url.password = encodeURIComponent(password);
  url.pathname = `/${encodeURIComponent(database)}`;
  const ownerUrl = url.toString();

  const db = new pg.Client(pgClientConfig(ownerUrl));
  await db.connect();
  const tables: Array<[string, string]> = [];
  try {
    const { quotes, backslash, upper, lower } = HOSTILE.schemas;
    for (const schema of Object.values(HOSTILE.schemas)) await db.query(`CREATE SCHEMA ${q(schema)}`);
    const mood = qualified(quotes, HOSTILE.enum.name);
    await db.query(`CREATE TYPE ${mood} AS ENUM (${HOSTILE.enum.values.map(pgLiteral).join(', ')})`);
    const seq = qualified(quotes, HOSTILE.sequence);
    await db.query(`CREATE SEQUENCE ${seq}`);
    await db.query(
      `CREATE FUNCTION ${qualified(quotes, HOSTILE.function)}(a int) RETURNS text LANGUAGE sql IMMUTABLE AS ${pgLiteral("SELECT '$lifeline$' || a::text")}`,
    );

    const orderItems: [string, string] = ['public', 'order items'];
    await db.query(
      `CREATE TABLE ${qualified(...orderItems)} (id int PRIMARY KEY DEFAULT nextval(${pgLiteral(seq)}), ${q('na me')} text, ${q('Qu"ote')} ${mood}, ${q("it's")} numeric)`,
    );
    tables.push(orderItems);
    const shell: [string, string] = ['public', shellTableName(canaryFile)];
    await db.query(`CREATE TABLE ${qualified(...shell)} (id int PRIMARY KEY, ${q('$lifeline$ \\! note')} text)`);
    tables.push(shell);
    const child: [string, string] = [quotes, `tab 'single' "double" %s %I ;`];
    await db.query(
      `CREATE TABLE ${qualified(...child)} (id int PRIMARY KEY, ${q('col\nnewline')} text, ${q('order ref')} int REFERENCES ${qualified(...orderItems)}(id))`,
    );
    tables.push(child);
    await db.query(`CREATE INDEX ${q(HOSTILE.index)} ON ${qualified(...child)} (${q('col\nnewline')})`);
    const long: [string, string] = [backslash, LONG_MULTIBYTE];
    await db.query(`CREATE TABLE ${qualified(...long)} (id int PRIMARY KEY, ${q(LONG_ASCII)} text)`);
    tables.push(long);
    const dotted: [string, string] = ['public', 'dot.ted \\gexec'];
    await db.query(`CREATE TABLE ${qualified(...dotted)} (id int PRIMARY KEY, v text)`);
    tables.push(dotted);
    for (const [schema, name] of [[upper, 'T'], [upper, 't'], [lower, 'T'], ['public', 'Mixed'], ['public', 'mixed']] as Array<[string, string]>) {
      await db.query(`CREATE TABLE ${qualified(schema, name)} (id int PRIMARY KEY, v text)`);
      tables.push([schema, name]);
    }
    const parent: [string, string] = [quotes, 'part "p" $tag$'];
    await db.query(`CREATE TABLE ${qualified(...parent)} (id int, v text) PARTITION BY RANGE (id)`);
    const partition: [string, string] = [quotes, 'part "p" 1-1000 \\!'];
    await db.query(`CREATE TABLE ${qualified(...partition)} PARTITION OF ${qualified(...parent)} FOR VALUES FROM (1) TO (1001)`);
    tables.push(partition);
    // Prints as "public.dot.ted \gexec" too: a schema.table string cannot tell the two apart.
    const lookalike: [string, string] = ['public.dot', 'ted \\gexec'];
    await db.query(`CREATE SCHEMA ${q(lookalike[0])}`);
    await db.query(`CREATE TABLE ${qualified(...lookalike)} (id int PRIMARY KEY, v text)`);
    tables.push(lookalike);
    for (const role of HOSTILE.roles) await db.query(`GRANT SELECT ON ${qualified(...orderItems)} TO ${q(role)}`);
    await db.query(`COMMENT ON TABLE ${qualified(...shell)} IS ${pgLiteral('$lifeline$\n\\! touch /nonexistent\n')}`);

    // Rows: every hostile text in every table, through bind parameters.
    for (const [i, text] of HOSTILE_TEXT.entries()) {
      const id = i + 1;
      await db.query(`INSERT INTO ${qualified(...orderItems)} (${q('na me')}, ${q('Qu"ote')}, ${q("it's")}) VALUES ($1, $2, $3)`, [
        text,
        HOSTILE.enum.values[i % HOSTILE.enum.values.length],
        id * 1.5,
      ]);
      await db.query(`INSERT INTO ${qualified(...shell)} VALUES ($1, $2)`, [id, text]);
      await db.query(`INSERT INTO ${qualified(...child)} VALUES ($1, $2, $3)`, [id, text, id]);
      await db.query(`INSERT INTO ${qualified(...long)} VALUES ($1, $2)`, [id, text]);
      await db.query(`INSERT INTO ${qualified(...parent)} VALUES ($1, $2)`, [id, text]);
      for (const [schema, name] of [...tables.slice(4, 10), lookalike]) await db.query(`INSERT INTO ${qualified(schema, name)} VALUES ($1, $2)`, [id, `${name}: ${text}`]);
    }
  } finally {
    await db.end();
  }
  return { url: ownerUrl, password, owner, database, tables };
}

/** A string literal for the few statements that take no bind parameters (DDL). */
function pgLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
