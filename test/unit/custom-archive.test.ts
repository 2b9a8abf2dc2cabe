/**
 * src/parts/custom-archive.ts and archive-from-parts.ts on real archives: pg_dump 15 of a database
 * with odd names, a partition, a sequence, a large object and tables whose rows stay in the archive
 * between those stored as parts. The archive part (pg_dump --exclude-table-data, written to a pipe)
 * and COPY parts are assembled into one archive, compared with pg_dump's own full archive of the
 * same database, and restored with plain pg_restore. Its own small cluster: no Temporal needed.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { TableCount } from '../../src/catalog/manifest';
import { dataKey } from '../../src/catalog/naming';
import { PrivateCluster } from '../../src/infra/postgres-cluster';
import { writeArchiveFromParts } from '../../src/parts/archive-from-parts';
import { copyToSql } from '../../src/parts/copy-sql';
import {
  BLK_BLOBS,
  ByteReader,
  encodeHeader,
  encodeToc,
  readBlockStart,
  readHeader,
  readToc,
  blockBody,
  blockStart,
  copyStatement,
  type ArchiveHeader,
  type TocEntry,
} from '../../src/parts/custom-archive';
import { ARCHIVE_PART, partObjectKey, tablePartName } from '../../src/parts/part-names';
import type { PartRecord } from '../../src/parts/part-record';
import { partObjectKeyOf } from '../../src/parts/parts-of';
import { PartWriter } from '../../src/parts/write-part';
import { pgTool } from '../../src/postgres/binaries';
import { quoteIdent } from '../../src/postgres/connection';
import { LocalStorage } from '../../src/storage/local';
import { contentOf } from '../harness/compare';
import { HOSTILE } from '../harness/hostile-names';
import { newWorkDir } from '../harness/servers';

const run = promisify(execFile);
const q = quoteIdent;
const ODD = HOSTILE.schemas.quotes;
const HOSTILE_TABLE = `tab 'single' "double" %s %I ;`;

/** The tables stored as parts ([schema, name, parts]); public.aaa and public.zzz keep their rows in the archive. */
const PART_TABLES: Array<[string, string, number]> = [
  ['public', 't', 2],
  [ODD, HOSTILE_TABLE, 1],
  ['public', 'p1', 1],
  ['public', 'empty', 1],
];

async function pgDump(url: string, args: string[]): Promise<Buffer> {
  // stdout is a pipe, as in a backup: no data offsets.
  const { stdout } = await run(pgTool('pg_dump'), ['-Fc', '-Z0', ...args, `--dbname=${url}`], { encoding: 'buffer', maxBuffer: 256 << 20 });
  return stdout;
}

function excludePattern(schema: string, name: string): string {
  return `"${schema.replace(/"/g, '""')}"."${name.replace(/"/g, '""')}"`;
}

/** The archive as a stream of small uneven chunks: every field crosses chunk boundaries somewhere. */
function reader(bytes: Buffer, where = 'test archive'): ByteReader {
  const chunks: Buffer[] = [];
  for (let at = 0, n = 1; at < bytes.length; at += n, n = (n % 13) + 1) chunks.push(bytes.subarray(at, at + n));
  return new ByteReader(Readable.from(chunks), where);
}

async function parse(bytes: Buffer): Promise<{ header: ArchiveHeader; toc: TocEntry[]; blocks: Array<{ dumpId: number; type: number; body: Buffer }>; tocEnd: number }> {
  const r = reader(bytes);
  const header = await readHeader(r);
  const toc = await readToc(r, header);
  const tocEnd = r.position;
  const blocks = [];
  for (let b = await readBlockStart(r, header); b; b = await readBlockStart(r, header)) {
    const body: Buffer[] = [];
    for await (const piece of blockBody(r, header, b.type)) body.push(Buffer.from(piece));
    blocks.push({ ...b, body: Buffer.concat(body) });
  }
  return { header, toc, blocks, tocEnd };
}

class Collect extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _e: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk);
    done();
  }
}

/** What pg_restore prints for an archive, without the per-run \restrict key and the COPY statements' quoting. */
async function script(file: string): Promise<string> {
  const { stdout } = await run(pgTool('pg_restore'), ['-f', '-', file], { maxBuffer: 256 << 20 });
  return stdout
    .split('\n')
    .filter((l) => !l.startsWith('\\restrict') && !l.startsWith('\\unrestrict') && !l.startsWith('COPY '))
    .join('\n');
}

describe('pg_dump custom archives: read, extend with table parts, write', () => {
  let cluster: PrivateCluster;
  let dir: string;
  let url: string;
  let full: Buffer;
  let excluded: Buffer;
  let storage: LocalStorage;
  const id = 'ca_src_backup_20261128_000000';
  const dataKeyBytes = randomBytes(32);
  let record: { id: string; object: { storage: string; key: string }; compression: { algorithm: 'zstd'; level: number }; tables: TableCount[]; parts: PartRecord[] };

  before(async () => {
    dir = newWorkDir('custom-archive');
    cluster = await new PrivateCluster(path.join(dir, 'postgres')).start();
    await cluster.sql('CREATE DATABASE ca_src');
    url = cluster.adminUrl('ca_src');
    await cluster.sql(
      `CREATE SCHEMA ${q(ODD)};
       CREATE TABLE public.aaa (id int PRIMARY KEY, v text);
       INSERT INTO public.aaa SELECT g, 'kept ' || g FROM generate_series(1, 50) g;
       CREATE TABLE public.t (a int PRIMARY KEY, b text, gone text, c numeric);
       ALTER TABLE public.t DROP COLUMN gone;
       INSERT INTO public.t SELECT g, CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN E'tab\\there \\\\. \\\\N' WHEN 2 THEN E'new\\nline ünï' ELSE md5(g::text) END, g / 7.0
         FROM generate_series(1, 5000) g;
       CREATE TABLE ${q(ODD)}.${q(HOSTILE_TABLE)} (id int PRIMARY KEY, ${q('col\nnewline')} text, ${q('Qu"ote')} int GENERATED ALWAYS AS (id * 2) STORED);
       INSERT INTO ${q(ODD)}.${q(HOSTILE_TABLE)} (id, ${q('col\nnewline')}) SELECT g, repeat('x', g) FROM generate_series(1, 100) g;
       CREATE TABLE public.p (id int, v text) PARTITION BY RANGE (id);
       CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (1) TO (1000);
       INSERT INTO public.p SELECT g, 'p ' || g FROM generate_series(1, 999) g;
       CREATE TABLE public.empty (id int);
       CREATE TABLE public.zzz (id int PRIMARY KEY, t_ref int REFERENCES public.t(a));
       INSERT INTO public.zzz SELECT g, g FROM generate_series(1, 30) g;
       CREATE SEQUENCE public.s; SELECT setval('public.s', 4242);
       SELECT lo_from_bytea(0, decode(repeat(md5('lo'), 8000), 'hex'));`,
      'ca_src',
    );
    full = await pgDump(url, []);
    excluded = await pgDump(url, PART_TABLES.flatMap(([s, n]) => ['--exclude-table-data', excludePattern(s, n)]));

    // The parts, written as a backup writes them (compressed, each under its own key), from the same data.
    storage = new LocalStorage('local', path.join(dir, 'repo'));
    const object = { storage: 'local', key: dataKey('ca_src', id, 'zst') };
    const compression = { algorithm: 'zstd' as const, level: 3, threads: 1 };
    const write = async (name: string, key: string, source: Readable) => {
      const written = await new PartWriter({ storage, key, backupId: id, name, dataKey: dataKeyBytes, compression }).write([source], new AbortController().signal);
      return { rawBytes: written.rawBytes, storedBytes: written.storedBytes, sha256: written.sha256, rawSha256: written.rawSha256 };
    };
    const parts: PartRecord[] = [{ name: ARCHIVE_PART, kind: 'archive', ...(await write(ARCHIVE_PART, object.key, Readable.from([excluded]))) }];
    const tables: TableCount[] = [];
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (const [schema, name, count] of PART_TABLES) {
        const { rows } = await client.query<{ oid: number; pages: number; columns: string[] }>(
          `SELECT c.oid::int AS oid, pg_relation_size(c.oid) / 8192 AS pages,
                  array(SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum)::text[] AS columns
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
          [schema, name],
        );
        const { oid, pages, columns } = rows[0]!;
        const table: TableCount = { schema, name, kind: 'table', rows: 0, oid, columns };
        tables.push(table);
        const split = Math.ceil(Number(pages) / count);
        for (let i = 0; i < count; i++) {
          const range = count === 1 ? undefined : { fromBlock: i * split, ...(i < count - 1 && { toBlock: (i + 1) * split }) };
          const partName = tablePartName(oid, i);
          const stream = client.query(copyTo(copyToSql(table, range)));
          const written = await write(partName, partObjectKey('ca_src', id, partName, 'zst'), stream);
          parts.push({ name: partName, kind: 'table-data', tableOid: oid, rows: 0, ...written });
        }
      }
    } finally {
      await client.end();
    }
    record = { id, object, compression: { algorithm: 'zstd', level: 3 }, tables, parts };
  });

  after(async () => {
    await cluster?.stop();
  });

  const assemble = async (rec = record) => {
    const out = new Collect();
    const result = await writeArchiveFromParts(storage, rec, dataKeyBytes, out);
    return { bytes: Buffer.concat(out.chunks), result };
  };

  it('reads a pipe-written archive and writes it back byte for byte', async () => {
    for (const bytes of [full, excluded]) {
      const { header, toc, blocks, tocEnd } = await parse(bytes);
      assert.equal(`${header.major}.${header.minor}`, '1.14');
      const again = Buffer.concat([encodeHeader(header), encodeToc(header, toc), ...blocks.flatMap((b) => [blockStart(header, b.dumpId, b.type), b.body])]);
      assert.equal(encodeHeader(header).length + encodeToc(header, toc).length, tocEnd);
      assert.ok(again.equals(bytes), 'the same bytes');
      assert.ok(blocks.some((b) => b.type === BLK_BLOBS), 'the large object is a BLOBS block');
    }
  });

  it('reads and writes the 1.15 and 1.16 layouts (compression byte; relkind in each TOC entry)', async () => {
    const { header, toc } = await parse(full);
    for (const minor of [15, 16]) {
      const h = { ...header, minor };
      const entries = toc.map((e) => ({ ...e, relkind: minor >= 16 && e.desc === 'TABLE' ? 'r'.charCodeAt(0) : 0 }));
      const bytes = Buffer.concat([encodeHeader(h), encodeToc(h, entries)]);
      // 1.15 writes the compression algorithm as one byte where 1.14 wrote an int level.
      assert.equal(bytes[11], 0);
      assert.equal(bytes.length, encodeHeader(header).length - 4 + encodeToc(header, toc).length + (minor >= 16 ? toc.length * 5 : 0));
      const r = reader(bytes);
      const back = await readHeader(r);
      assert.deepEqual(back, h);
      assert.deepEqual(await readToc(r, back), entries);
    }
  });

  it('refuses versions and compressed archives it cannot extend, saying which', async () => {
    const future = Buffer.from(full);
    future[6] = 17;
    await assert.rejects(readHeader(reader(future)), /version 1\.17, which this Lifeline cannot extend/);
    const old = Buffer.from(full);
    old[6] = 13;
    await assert.rejects(readHeader(reader(old)), /version 1\.13/);
    const compressed = await pgDump(url, ['-Z', '6']); // -Z0 then -Z 6: the last one counts
    await assert.rejects(readHeader(reader(compressed)), /compressed data blocks \(level 6\)/);
    await assert.rejects(readHeader(reader(Buffer.from('PGDMX'))), /does not start with PGDMP/);
    await assert.rejects(readHeader(reader(full.subarray(0, 20))), /ends early/);
  });

  it("gives pg_dump's TOC: each table's TABLE DATA entry where pg_dump puts it, found by OID", async () => {
    const { bytes } = await assemble();
    assert.ok((await assemble()).bytes.equals(bytes), 'the same backup always gives the same archive');
    const ours = await parse(bytes);
    const theirs = await parse(full);
    const shape = (e: TocEntry) => [e.desc, e.section, e.catalogTableOid, e.catalogOid, e.namespace, e.tag, e.owner, e.defn, e.dropStmt, e.hadDumper, e.dataState, e.tablespace, e.tableam, e.withOids];
    assert.deepEqual(ours.toc.map(shape), theirs.toc.map(shape));
    const tableIds = new Map(ours.toc.filter((e) => e.desc === 'TABLE').map((e) => [e.catalogOid, e.dumpId]));
    const maxId = Math.max(...(await parse(excluded)).toc.map((e) => e.dumpId));
    for (const [schema, name] of PART_TABLES) {
      const entry = ours.toc.find((e) => e.desc === 'TABLE DATA' && e.namespace === Buffer.from(schema).toString('latin1') && e.tag === Buffer.from(name).toString('latin1'))!;
      assert.ok(entry.dumpId > maxId, 'a new dump id, after the largest');
      assert.deepEqual(entry.dependencies, [String(tableIds.get(entry.catalogOid))]);
      const table = record.tables.find((t) => t.name === name)!;
      assert.equal(Buffer.from(entry.copyStmt!, 'latin1').toString(), `COPY ${q(schema)}.${q(name)} (${table.columns!.map(q).join(', ')}) FROM stdin;\n`);
    }
    // Blocks in TOC order, the archive's own ones (rows kept in it, the large object) unchanged.
    const order = ours.toc.filter((e) => e.dataState !== 3).map((e) => e.dumpId);
    assert.deepEqual(ours.blocks.map((b) => b.dumpId), order);
    const own = (await parse(excluded)).blocks;
    for (const block of own) assert.ok(ours.blocks.some((b) => b.dumpId === block.dumpId && b.body.equals(block.body)));
  });

  it('restores with plain pg_restore, from a file and from a pipe, exactly as the full archive does', async () => {
    const { bytes, result } = await assemble();
    assert.equal(result.tables, PART_TABLES.length);
    assert.equal(result.tableParts, 5);
    const file = path.join(dir, 'assembled.dump');
    const fullFile = path.join(dir, 'full.dump');
    writeFileSync(file, bytes);
    writeFileSync(fullFile, full);
    assert.equal(await script(file), await script(fullFile));

    for (const [target, viaPipe] of [['ca_file', false], ['ca_pipe', true]] as const) {
      await cluster.sql(`CREATE DATABASE ${target}`);
      const args = ['--exit-on-error', '--single-transaction', `--dbname=${cluster.adminUrl(target)}`];
      if (!viaPipe) await run(pgTool('pg_restore'), [...args, file]);
      else {
        const child = spawn(pgTool('pg_restore'), args, { stdio: ['pipe', 'inherit', 'inherit'] });
        child.stdin.end(bytes);
        assert.equal(await new Promise((resolve) => child.on('close', resolve)), 0);
      }
      assert.deepEqual(await contentOf(cluster.adminUrl(target)), await contentOf(url));
      const [seq] = await cluster.sql<{ v: string }>('SELECT last_value::text AS v FROM public.s', target);
      assert.equal(seq!.v, '4242');
    }
  });

  it('the TOC with data offsets points at each block, as in an archive pg_dump writes to a file; pg_restore -j reads it', async () => {
    // pg_dump -f FILE: its offsets are positions of the block starts (type byte), what `located` must give.
    const fileDump = path.join(dir, 'with-offsets.dump');
    await run(pgTool('pg_dump'), ['-Fc', '-Z0', '-f', fileDump, `--dbname=${url}`]);
    const pointsAtBlocks = async (bytes: Buffer) => {
      const { header, toc } = await parse(bytes);
      const withData = toc.filter((e) => e.dataState !== 3);
      assert.ok(withData.length > 0 && withData.every((e) => e.dataState === 2), 'every data entry has its offset set');
      for (const e of withData) {
        const r = reader(bytes.subarray(Number(e.dataPos)));
        assert.deepEqual(await readBlockStart(r, header), { type: e.desc === 'BLOBS' ? BLK_BLOBS : 1, dumpId: e.dumpId });
      }
    };
    await pointsAtBlocks(readFileSync(fileDump));
    const { bytes, result } = await assemble();
    const located = Buffer.from(bytes);
    result.located.toc.copy(located, result.located.position);
    assert.equal(located.length, bytes.length);
    await pointsAtBlocks(located);
    const file = path.join(dir, 'located.dump');
    writeFileSync(file, located);
    await cluster.sql('CREATE DATABASE ca_jobs');
    await run(pgTool('pg_restore'), ['-j', '2', '--exit-on-error', `--dbname=${cluster.adminUrl('ca_jobs')}`, file]);
    assert.deepEqual(await contentOf(cluster.adminUrl('ca_jobs')), await contentOf(url));
  });

  it('a database in another encoding: its rows (COPY text in UTF-8) load with ENCODING, non-ASCII names are refused', async () => {
    assert.equal(copyStatement({ schema: 'public', name: 't', columns: ['a'] }, 'UTF8'), 'COPY "public"."t" ("a") FROM stdin;\n');
    assert.equal(copyStatement({ schema: 'public', name: 't', columns: [] }, 'SQL_ASCII'), 'COPY "public"."t" FROM stdin;\n');
    assert.throws(() => copyStatement({ schema: 'public', name: 'tè', columns: ['a'] }, 'LATIN1'), /non-ASCII names in a database whose encoding is LATIN1/);

    await cluster.sql(`CREATE DATABASE ca_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
    const latin1 = cluster.adminUrl('ca_latin1');
    await cluster.sql(`CREATE TABLE public.words (id int PRIMARY KEY, w text); INSERT INTO public.words VALUES (1, 'café'), (2, 'naïve ßü'), (3, NULL)`, 'ca_latin1');
    const archive = await pgDump(latin1, ['--exclude-table-data', '"public"."words"']);
    const latinId = 'ca_latin1_backup_20261128_000000';
    const object = { storage: 'local', key: dataKey('ca_latin1', latinId, 'zst') };
    const compression = { algorithm: 'zstd' as const, level: 3, threads: 1 };
    const write = async (name: string, key: string, source: Readable) => {
      const w = await new PartWriter({ storage, key, backupId: latinId, name, dataKey: dataKeyBytes, compression }).write([source], new AbortController().signal);
      return { rawBytes: w.rawBytes, storedBytes: w.storedBytes, sha256: w.sha256, rawSha256: w.rawSha256 };
    };
    const client = new pg.Client({ connectionString: latin1 }); // node-postgres: client_encoding UTF8, as the dump's COPY sessions
    await client.connect();
    let rec;
    try {
      const [{ oid }] = (await client.query<{ oid: number }>(`SELECT 'public.words'::regclass::oid::int AS oid`)).rows as [{ oid: number }];
      const table: TableCount = { schema: 'public', name: 'words', kind: 'table', rows: 3, oid, columns: ['id', 'w'] };
      const rows = await write(tablePartName(oid, 0), partObjectKey('ca_latin1', latinId, tablePartName(oid, 0), 'zst'), client.query(copyTo(copyToSql(table))));
      rec = {
        id: latinId,
        object,
        compression: { algorithm: 'zstd' as const, level: 3 },
        tables: [table],
        parts: [
          { name: ARCHIVE_PART, kind: 'archive' as const, ...(await write(ARCHIVE_PART, object.key, Readable.from([archive]))) },
          { name: tablePartName(oid, 0), kind: 'table-data' as const, tableOid: oid, rows: 3, ...rows },
        ],
      };
    } finally {
      await client.end();
    }
    const out = new Collect();
    await writeArchiveFromParts(storage, rec, dataKeyBytes, out);
    const file = path.join(dir, 'latin1.dump');
    writeFileSync(file, Buffer.concat(out.chunks));
    assert.match((await script(file)).replace(/\n/g, ' '), /SET client_encoding = 'LATIN1'/);
    await cluster.sql(`CREATE DATABASE ca_latin1_copy ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
    await run(pgTool('pg_restore'), ['--exit-on-error', `--dbname=${cluster.adminUrl('ca_latin1_copy')}`, file]);
    assert.deepEqual(await cluster.sql('SELECT id, w FROM public.words ORDER BY id', 'ca_latin1_copy'), await cluster.sql('SELECT id, w FROM public.words ORDER BY id', 'ca_latin1'));
  });

  it('a damaged, missing or swapped part fails naming it', async () => {
    const part = record.parts.find((p) => p.name.endsWith('-0001'))!;
    const file = storage.describe(partObjectKeyOf(record, part));
    const good = readFileSync(file);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 10]! ^= 1;
    try {
      writeFileSync(file, flipped);
      await assert.rejects(assemble(), (err: Error) => err.message.includes(`part ${part.name} of backup ${id}`));
      const other = record.parts.find((p) => p.name.endsWith('-0000') && p.tableOid === part.tableOid)!;
      writeFileSync(file, readFileSync(storage.describe(partObjectKeyOf(record, other))));
      await assert.rejects(assemble(), new RegExp(`part ${part.name} of backup ${id} .* is not that part`));
    } finally {
      writeFileSync(file, good);
    }
    const missing = { ...record, parts: record.parts.map((p) => (p === part ? { ...p, name: tablePartName(part.tableOid!, 2) } : p)) };
    await assert.rejects(assemble(missing), /t\d+-0002 of backup .* is missing/);
    await assemble();
  });

  it('the archive part, read again after the tables (its stream is closed meanwhile), must be the same bytes', async () => {
    // A copy of the archive part that authenticates (same key, same name) but holds another archive.
    const other = new LocalStorage('local', path.join(dir, 'other'));
    await new PartWriter({ storage: other, key: record.object.key, backupId: id, name: ARCHIVE_PART, dataKey: dataKeyBytes, compression: { algorithm: 'zstd', level: 3, threads: 1 } }).write(
      [Readable.from([full])],
      new AbortController().signal,
    );
    class Swapping extends LocalStorage {
      reads = 0;
      override async read(key: string, range?: { start: number; end: number }) {
        return key === record.object.key && this.reads++ > 0 ? other.read(key, range) : super.read(key, range);
      }
    }
    const swapping = new Swapping('local', storage.location);
    await assert.rejects(writeArchiveFromParts(swapping, record, dataKeyBytes, new Collect()), /part archive of backup .* changed while it was being read/);
    assert.equal(swapping.reads, 2);
  });

  it('refuses a table the archive has no TABLE entry for, or already holds the rows of', async () => {
    const t = record.tables[0]!;
    const renamed = { ...record, tables: record.tables.map((x) => (x === t ? { ...x, oid: 999999 } : x)), parts: record.parts.map((p) => (p.tableOid === t.oid ? { ...p, tableOid: 999999, name: p.name.replace(`t${t.oid}-`, 't999999-') } : p)) };
    await assert.rejects(assemble(renamed), /has no TABLE entry for public\.t \(OID 999999\)/);
    const kept = record.tables.length;
    const aaa = (await parse(excluded)).toc.find((e) => e.desc === 'TABLE' && e.tag === 'aaa')!;
    const withKept = {
      ...record,
      tables: [...record.tables, { schema: 'public', name: 'aaa', kind: 'table' as const, rows: 0, oid: Number(aaa.catalogOid), columns: ['id', 'v'] }],
      parts: [...record.parts, { ...record.parts.at(-1)!, name: tablePartName(Number(aaa.catalogOid), 0), tableOid: Number(aaa.catalogOid) }],
    };
    assert.equal(withKept.tables.length, kept + 1);
    await assert.rejects(assemble(withKept), /already holds the rows of public\.aaa/);
  });
});
