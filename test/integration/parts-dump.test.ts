/**
 * Issue 11, items 1-2: a backup in the parts format. In one snapshot, pg_dump writes the archive
 * without the rows of the part tables while BACKUP_PARALLEL_JOBS sessions copy each table's rows
 * (a large table split into block ranges); every part is its own encrypted object in the manifest,
 * and the row counts are those of the COPY streams.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { before, describe, it } from 'node:test';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { claimBackupId } from '../../src/backup/claim';
import { dumpToRepository, type PartEvent } from '../../src/backup/dump';
import { dataKeyFor } from '../../src/backup/read-backup';
import { localStorageFor } from '../../src/backup/repository';
import { namingProblem, qualifiedName, type DumpRecord, type TableCount } from '../../src/catalog/manifest';
import { backupId, dataKey } from '../../src/catalog/naming';
import type { DatabaseConfig, LifelineConfig } from '../../src/config/config';
import { keyringFor } from '../../src/crypto/keys';
import { LifelineError } from '../../src/errors';
import { copyToSql } from '../../src/parts/copy-sql';
import { parseGlobals } from '../../src/parts/globals';
import { ARCHIVE_PART, GLOBALS_PART } from '../../src/parts/part-names';
import type { PartRecord } from '../../src/parts/part-record';
import { partsOfTable } from '../../src/parts/parts-of';
import { checkPart, openPart } from '../../src/parts/read-part';
import { pgClientConfig, quoteIdent } from '../../src/postgres/connection';
import { pgRestoreListSink } from '../../src/postgres/pg-restore-list';
import type { BackupStorage } from '../../src/storage/storage';
import { nextSecond, query, testConfig } from '../harness/fixtures';
import { HOSTILE } from '../harness/hostile-names';
import { testServers, type TestServers } from '../harness/servers';

const q = quoteIdent;
const qualified = (schema: string, name: string) => `${q(schema)}.${q(name)}`;
const ODD = HOSTILE.schemas.quotes;

/** [schema, name] of the fixture's tables. */
const T = {
  accounts: ['ledger', 'accounts'],
  big: [ODD, 'events "big" $tag$ \\! %s'],
  orders: ['ledger', 'orders'],
  ordersEu: ['ledger', 'orders eu'],
  ordersUs: [ODD, 'orders "us"'],
  ordersUsLow: ['ledger', 'orders us low'],
  ordersUsHigh: [ODD, 'orders us high \\gexec'],
  empty: ['ledger', 'empty'],
} as const satisfies Record<string, readonly [string, string]>;

/**
 * Two schemas (one hostile), a table of about 8 MiB (eight parts of 1 MiB) with a generated and a
 * dropped column and values COPY must escape, a partitioned table with a partitioned partition in
 * the other schema, an empty table, and grants to a role that is a member of another.
 */
async function seed(url: string, roles: { reader: string; group: string }): Promise<void> {
  const db = new pg.Client(pgClientConfig(url));
  await db.connect();
  try {
    await db.query(`CREATE SCHEMA ledger; CREATE SCHEMA ${q(ODD)}`);
    await db.query(`CREATE TABLE ${qualified(...T.accounts)} (id int PRIMARY KEY, name text)`);
    await db.query(`INSERT INTO ${qualified(...T.accounts)} SELECT g, 'account ' || g FROM generate_series(1, 500) g`);
    await db.query(
      `CREATE TABLE ${qualified(...T.big)} (id bigint PRIMARY KEY, payload text, gone text, total numeric GENERATED ALWAYS AS (id * 2) STORED, ${q('na "me"')} text)`,
    );
    await db.query(`ALTER TABLE ${qualified(...T.big)} DROP COLUMN gone`);
    await db.query(
      `INSERT INTO ${qualified(...T.big)} (id, payload, ${q('na "me"')})
       SELECT g, repeat(md5(g::text), 5), CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN E'tab\\t\\\\N\\n\\\\.' WHEN 2 THEN 'ünï 😀' ELSE 'plain ' || g END
       FROM generate_series(1, 40000) g`,
    );
    await db.query(`CREATE TABLE ${qualified(...T.orders)} (id int, amount int, region text) PARTITION BY LIST (region)`);
    await db.query(`CREATE TABLE ${qualified(...T.ordersEu)} PARTITION OF ${qualified(...T.orders)} FOR VALUES IN ('eu')`);
    await db.query(`CREATE TABLE ${qualified(...T.ordersUs)} PARTITION OF ${qualified(...T.orders)} FOR VALUES IN ('us') PARTITION BY RANGE (id)`);
    await db.query(`CREATE TABLE ${qualified(...T.ordersUsLow)} PARTITION OF ${qualified(...T.ordersUs)} FOR VALUES FROM (MINVALUE) TO (1000)`);
    await db.query(`CREATE TABLE ${qualified(...T.ordersUsHigh)} PARTITION OF ${qualified(...T.ordersUs)} FOR VALUES FROM (1000) TO (MAXVALUE)`);
    await db.query(`INSERT INTO ${qualified(...T.orders)} SELECT g, g * 3, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 3000) g`);
    await db.query(`CREATE TABLE ${qualified(...T.empty)} (id int)`);
    await db.query(`GRANT SELECT ON ${qualified(...T.accounts)} TO ${q(roles.reader)}`);
    await db.query('ANALYZE');
  } finally {
    await db.end();
  }
}

/** Every part's plain bytes, checked against the manifest (stored and plain SHA-256 and sizes). */
async function readPart(storage: BackupStorage, record: DumpRecord, part: PartRecord, key: Buffer, sink?: Writable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const chain = await openPart(storage, record, part, key);
  await pipeline(
    ...chain.stages,
    sink ??
      new Writable({
        write(chunk: Buffer, _enc, done) {
          chunks.push(chunk);
          done();
        },
      }),
  );
  checkPart(chain, part);
  return Buffer.concat(chunks);
}

/** The table's COPY text straight from the server (same statement, same output settings), one line per row. */
async function copyLines(url: string, table: TableCount): Promise<string[]> {
  const client = new pg.Client(pgClientConfig(url));
  await client.connect();
  try {
    await client.query("SET DateStyle = ISO; SET extra_float_digits = 3; SET client_encoding = 'UTF8'");
    const chunks: Buffer[] = [];
    await pipeline(
      client.query(copyTo(copyToSql(table))),
      new Writable({
        write(chunk: Buffer, _enc, done) {
          chunks.push(chunk);
          done();
        },
      }),
    );
    return linesOf(Buffer.concat(chunks));
  } finally {
    await client.end();
  }
}

const linesOf = (text: Buffer) => text.toString('utf8').split('\n').slice(0, -1);

async function countOf(url: string, table: TableCount): Promise<number> {
  const only = table.kind === 'table' ? 'ONLY ' : '';
  const [row] = await query<{ n: string }>(url, `SELECT count(*) AS n FROM ${only}${qualified(table.schema, table.name)}`);
  return Number(row!.n);
}

const find = (record: DumpRecord, [schema, name]: readonly [string, string]) => {
  const table = record.tables.find((t) => t.schema === schema && t.name === name);
  assert.ok(table, `${schema}.${name} is in the manifest`);
  return table;
};

describe('a backup in the parts format', () => {
  let servers: TestServers;
  let config: LifelineConfig;
  let db: DatabaseConfig;
  let storage: BackupStorage;
  let adminUrl: string;
  let owner: string;
  const roles = { reader: 'pd_reader "r"', group: 'pd_group $x$' };
  let record: DumpRecord;
  const events: PartEvent[] = [];
  let lockCounts: number[] = [];

  before(async () => {
    servers = await testServers();
    for (const role of Object.values(roles)) {
      if (!(await servers.cluster.sql(`SELECT 1 FROM pg_roles WHERE rolname = '${role.replace(/'/g, "''")}'`)).length) await servers.cluster.sql(`CREATE ROLE ${q(role)}`);
    }
    await servers.cluster.sql(`GRANT ${q(roles.group)} TO ${q(roles.reader)} WITH ADMIN OPTION`);
    owner = 'pd_source_owner';
    const url = await servers.cluster.createDatabase('pd_source', owner, 'pw-parts-dump-secret');
    adminUrl = servers.cluster.adminUrl('pd_source');
    await seed(url, roles);
    const setup = await testConfig(servers, 'parts-dump', [{ name: 'pd_source', url }], {
      env: { BACKUP_FORMAT: 'parts', BACKUP_PARALLEL_JOBS: '2', BACKUP_PART_SIZE: '1MiB' },
    });
    config = setup.config;
    db = config.databases[0]!;
    storage = localStorageFor(db);
    // What each COPY session holds when it starts a part: locks on the fixture's tables.
    const watcher = new pg.Client({ connectionString: adminUrl });
    await watcher.connect();
    const observed: Array<Promise<number>> = [];
    const locksOf = (pid: number) =>
      watcher
        .query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
           WHERE l.pid = $1 AND c.relkind = 'r' AND c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY($2))`,
          [pid, ['ledger', ODD]],
        )
        .then((r) => r.rows[0]!.n);
    try {
      record = await dumpToRepository(config, db, { backupId: backupId(db.name, new Date()), type: 'full' }, {
        onPart: (e) => {
          events.push(e);
          if (e.phase === 'started' && e.pid !== undefined) observed.push(locksOf(e.pid));
        },
      });
      lockCounts = await Promise.all(observed);
    } finally {
      await watcher.end();
    }
  });

  it('lists every part in the manifest: the archive, the globals, at least one per table, several for the large one', async () => {
    assert.equal(record.format, 'parts-v1');
    assert.equal(namingProblem(record, { inRepository: true }), undefined);
    assert.equal(record.object.key, dataKey(db.name, record.id, 'zst'));
    const parts = record.parts!;
    assert.deepEqual(parts.filter((p) => p.kind !== 'table-data').map((p) => [p.name, p.kind]), [[ARCHIVE_PART, 'archive'], [GLOBALS_PART, 'globals']]);
    assert.equal(record.sha256, parts[0]!.sha256);
    assert.equal(record.rawSha256, parts[0]!.rawSha256);
    for (const field of ['rawBytes', 'storedBytes'] as const) assert.equal(record.sizes[field], parts.reduce((n, p) => n + p[field], 0), `sizes.${field} is the total over the parts`);
    for (const table of record.tables.filter((t) => t.kind === 'table')) assert.ok(partsOfTable(record, table.oid!).length >= 1, `${qualifiedName(table)} has a part`);
    assert.equal(record.tables.filter((t) => t.kind === 'table').length, 6);
    const big = find(record, T.big);
    const bigParts = partsOfTable(record, big.oid!);
    assert.ok(bigParts.length >= 6 && bigParts.length <= 10, `${bigParts.length} parts of an 8 MiB table with 1 MiB parts`);
    assert.ok(bigParts.every((p) => p.rows! > 0), 'no part of the large table is empty');
    const empty = partsOfTable(record, find(record, T.empty).oid!);
    assert.deepEqual(empty.map((p) => p.rows), [0], 'an empty table has one part, with no rows');
    for (const p of parts) assert.ok(await storage.stat(p.kind === 'archive' ? record.object.key : `${db.name}/${record.id}.part.${p.name}.zst.enc`), `${p.name} is stored`);
  });

  it('records row counts equal to count(*), partitioned parents as the sum of their partitions, and the columns COPY reads', async () => {
    for (const table of record.tables) assert.equal(table.rows, await countOf(adminUrl, table), qualifiedName(table));
    assert.equal(find(record, T.orders).rows, 3000);
    assert.equal(find(record, T.ordersUs).rows, 2000);
    assert.deepEqual(find(record, T.big).columns, ['id', 'payload', 'na "me"'], 'no generated, no dropped column');
    const orders = find(record, T.orders);
    const us = find(record, T.ordersUs);
    assert.equal(orders.parentOid, undefined);
    assert.equal(find(record, T.ordersEu).parentOid, orders.oid);
    assert.equal(us.parentOid, orders.oid);
    assert.equal(find(record, T.ordersUsLow).parentOid, us.oid);
    assert.equal(find(record, T.ordersUsHigh).parentOid, us.oid);
    assert.equal(find(record, T.accounts).parentOid, undefined);
  });

  it('each table part decrypts to COPY text with one line per recorded row; together they are the table', async () => {
    const key = await dataKeyFor(storage, record, keyringFor(config));
    for (const table of record.tables.filter((t) => t.kind === 'table')) {
      const lines: string[] = [];
      for (const part of partsOfTable(record, table.oid!)) {
        const text = await readPart(storage, record, part, key);
        const partLines = linesOf(text);
        assert.equal(partLines.length, part.rows, `${part.name} of ${qualifiedName(table)}`);
        lines.push(...partLines);
      }
      assert.deepEqual(lines.sort(), (await copyLines(adminUrl, table)).sort(), `the parts of ${qualifiedName(table)} hold its rows, each once`);
    }
  });

  it('the archive part holds the schema but no rows of the part tables (pg_restore --list)', async () => {
    const key = await dataKeyFor(storage, record, keyringFor(config));
    const list = pgRestoreListSink();
    await readPart(storage, record, record.parts!.find((p) => p.kind === 'archive')!, key, list.sink);
    const toc = await list.toc;
    assert.ok(toc.entries > 10, `${toc.entries} entries`);
    const partTables = new Set(record.tables.filter((t) => t.kind === 'table').map((t) => t.oid));
    assert.deepEqual(toc.tableData.filter((e) => partTables.has(e.oid)), [], 'no TABLE DATA of a table stored as parts');
  });

  it('the globals part lists the roles the database uses, their memberships, and no password', async () => {
    const key = await dataKeyFor(storage, record, keyringFor(config));
    const part = record.parts!.find((p) => p.kind === 'globals')!;
    const bytes = await readPart(storage, record, part, key);
    assert.doesNotMatch(bytes.toString('utf8'), /password|SCRAM-SHA-256|md5[0-9a-f]{32}/i);
    const globals = parseGlobals(bytes, 'the globals part');
    assert.deepEqual(globals.database, { name: 'pd_source', owner });
    const names = globals.roles.map((r) => r.name);
    for (const role of [owner, roles.reader, roles.group]) assert.ok(names.includes(role), `${role} is listed (${names.join(', ')})`);
    assert.ok(globals.roles.find((r) => r.name === owner)!.rolcanlogin);
    assert.deepEqual(globals.memberships.filter((m) => m.role === roles.group).map((m) => [m.member, m.admin]), [[roles.reader, true]]);
  });

  it('BACKUP_PARALLEL_JOBS=2 copies two parts at once on two sessions, never more', () => {
    const tableParts = record.parts!.filter((p) => p.kind === 'table-data').length;
    assert.equal(events.filter((e) => e.phase === 'stored').length, tableParts);
    let running = 0;
    let most = 0;
    // At equal times, a part stored before another starts: overlap is counted only when real.
    const ordered = [...events].sort((a, b) => a.at - b.at || (a.phase === 'stored' ? -1 : 1));
    for (const e of ordered) {
      running += e.phase === 'started' ? 1 : -1;
      most = Math.max(most, running);
    }
    assert.equal(most, 2, `at most ${most} COPY at once`);
    assert.equal(new Set(events.map((e) => e.pid)).size, 2, 'two COPY sessions');
    // Largest first: the large table's parts start before the small tables'.
    const firstSmall = events.findIndex((e) => e.phase === 'started' && !e.table.startsWith(`${ODD}.events`));
    const bigStarts = events.filter((e, i) => e.phase === 'started' && e.table.startsWith(`${ODD}.events`) && i > firstSmall);
    assert.deepEqual(bigStarts, [], 'every part of the large table started before any smaller one');
  });

  it('a COPY session holds the lock of the one table it copies, not of every table it copied (a transaction per part)', () => {
    assert.equal(lockCounts.length, record.parts!.filter((p) => p.kind === 'table-data').length);
    assert.ok(Math.max(...lockCounts) <= 1, `locks held by a COPY session: ${lockCounts.join(', ')}`);
  });

  it('a schema-only backup is the archive and the globals; a data-only one has the table parts and an archive without their rows', async () => {
    await nextSecond();
    const schemaOnly = await dumpToRepository(config, db, { backupId: backupId(db.name, new Date()), type: 'schema-only' });
    assert.deepEqual(schemaOnly.parts!.map((p) => p.kind), ['archive', 'globals']);
    assert.ok(schemaOnly.tables.every((t) => t.rows === 0));
    await nextSecond();
    const dataOnly = await dumpToRepository(config, db, { backupId: backupId(db.name, new Date()), type: 'data-only' });
    assert.equal(dataOnly.parts!.filter((p) => p.kind === 'table-data').length, record.parts!.filter((p) => p.kind === 'table-data').length);
    for (const table of dataOnly.tables) assert.equal(table.rows, await countOf(adminUrl, table), qualifiedName(table));
    const key = await dataKeyFor(storage, dataOnly, keyringFor(config));
    const list = pgRestoreListSink();
    await readPart(storage, dataOnly, dataOnly.parts![0]!, key, list.sink);
    assert.equal((await list.toc).tableDataEntries, 0);
  });

  it('BACKUP_FORMAT=stream still writes one pg_dump archive with counted rows', async () => {
    await nextSecond();
    const setup = await testConfig(servers, 'parts-dump-stream', [{ name: 'pd_source', url: db.url }], { env: { BACKUP_FORMAT: 'stream' } });
    const stream = await dumpToRepository(setup.config, setup.config.databases[0]!, { backupId: backupId(db.name, new Date()), type: 'full' });
    assert.equal(stream.format, undefined);
    assert.equal(stream.parts, undefined);
    for (const table of stream.tables) assert.equal(table.rows, await countOf(adminUrl, table), qualifiedName(table));
  });

  it('a retry removes the parts its crashed attempt published, never another backup\'s', async () => {
    await nextSecond();
    const id = backupId(db.name, new Date());
    const owner_ = { workflowId: 'pd-retry', runId: 'run-1' };
    assert.equal(await claimBackupId(storage, db.name, id, owner_), undefined);
    const crashed = `${db.name}/${id}.part.t1-0000.zst.enc`;
    const crashedArchive = dataKey(db.name, id, 'zst');
    const other = `${db.name}/${backupId(db.name, new Date(Date.now() - 3_600_000))}.part.t1-0000.zst.enc`;
    for (const k of [crashed, crashedArchive, other]) assert.ok(await storage.putIfAbsent(k, Buffer.from('left by a crashed attempt')));
    const retried = await dumpToRepository(config, db, { backupId: id, type: 'full', workflow: owner_ });
    assert.equal(await storage.stat(crashed), undefined, 'the crashed attempt\'s part is gone');
    assert.notEqual((await storage.get(crashedArchive))?.toString(), 'left by a crashed attempt', 'the archive is the retry\'s');
    assert.equal(retried.parts![0]!.storedBytes, (await storage.stat(crashedArchive))!.size);
    assert.ok(await storage.stat(other), 'another backup\'s object stays');
    await storage.delete(other);
  });

  it('a table under row-level security fails the dump (no rows silently left out), and nothing is left but the claim', async () => {
    await nextSecond();
    await servers.cluster.sql(`CREATE TABLE ledger.secret (id int, who text)`, 'pd_source');
    await servers.cluster.sql(`INSERT INTO ledger.secret SELECT g, 'u' || g FROM generate_series(1, 100) g`, 'pd_source');
    await servers.cluster.sql(`ALTER TABLE ledger.secret ENABLE ROW LEVEL SECURITY; CREATE POLICY mine ON ledger.secret USING (who = current_user); GRANT SELECT ON ledger.secret TO ${q(owner)}`, 'pd_source');
    const id = backupId(db.name, new Date());
    try {
      const error = await dumpToRepository(config, db, { backupId: id, type: 'full' }).then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(error instanceof LifelineError, `a LifelineError, not ${String(error)}`);
      assert.match(error.message, /row-level security/);
      const left = (await storage.list(`${db.name}/${id}.`)).map((o) => o.key);
      assert.deepEqual(left, [`${db.name}/${id}.pending.json`]);
      assert.deepEqual(await storage.removeIncomplete(`${db.name}/${id}`), [], 'no temporary object');
    } finally {
      await servers.cluster.sql('DROP TABLE ledger.secret', 'pd_source');
    }
  });
});
