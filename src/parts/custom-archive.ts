/**
 * The pg_dump custom archive format, as PostgreSQL's src/bin/pg_dump/pg_backup_archiver.c
 * (WriteHead/ReadHead, WriteToc/ReadToc, WriteInt/WriteStr/WriteOffset) and pg_backup_custom.c
 * (_WriteExtraToc, _StartData/_EndData, the data blocks) write it, for archive versions 1.14
 * (PostgreSQL 14, 15), 1.15 (16) and 1.16 (17). Just enough of it to read an archive's header and
 * table of contents, add TABLE DATA entries and write data blocks: `lifeline decrypt` so turns the
 * archive part and the table parts of a parts-format backup back into one archive plain
 * pg_restore reads.
 *
 *   int     sign byte (1 = negative), then intSize bytes of the magnitude, least significant first
 *   string  int length, then the bytes; length -1 is NULL
 *   header  "PGDMP", major, minor, revision, intSize, offSize, format (1 = custom) as bytes;
 *           compression (1.14: int level; 1.15+: one byte algorithm, 0 = none); the creation
 *           time as 7 ints; database name, server version, pg_dump version as strings
 *   TOC     int count; per entry: int dumpId, int hadDumper, string catalog tableoid, string oid,
 *           tag, desc, int section, defn, dropStmt, copyStmt, namespace, tablespace, tableam,
 *           [1.16: int relkind], owner, "false" (WITH OIDS), dependency dump ids as strings ended
 *           by NULL, then the custom format's offset: flag byte + offSize bytes, least significant first
 *   data    one block per entry with data, in TOC order: byte BLK_DATA (1) or BLK_BLOBS (3), int
 *           dumpId; BLK_DATA: chunks (int length, bytes) ended by length 0; BLK_BLOBS: per large
 *           object int oid then chunks ended by 0, the list ended by oid 0
 *
 * Strings are kept as byte strings (latin1: one character per byte), so names in any database
 * encoding are written back exactly as pg_dump wrote them.
 */
import { IntegrityError, LifelineError } from '../errors';
import { quoteIdent } from '../postgres/connection';

export type ByteString = string;

export const BLK_DATA = 1;
export const BLK_BLOBS = 3;
export const OFFSET_POS_NOT_SET = 1;
export const OFFSET_POS_SET = 2;
export const OFFSET_NO_DATA = 3;
/** teSection in pg_backup.h. */
export const SECTION_NONE = 1;
export const SECTION_PRE_DATA = 2;
export const SECTION_DATA = 3;
export const SECTION_POST_DATA = 4;
const ARCH_CUSTOM = 1;
/** pg_class's own OID: the catalog of every TABLE entry. */
const PG_CLASS = '1259';
const SUPPORTED_MINOR = [14, 15, 16];
/** pg_dump ends every COPY data stream with this line (dumpTableData_copy), as its own chunk. */
export const COPY_END_MARKER = Buffer.from('\\.\n\n\n', 'latin1');

export interface ArchiveHeader {
  major: number;
  minor: number;
  rev: number;
  intSize: number;
  offSize: number;
  format: number;
  /** 1.14: the zlib level; 1.15+: the algorithm (pg_compress_algorithm). 0 = not compressed in both. */
  compression: number;
  /** tm_sec, tm_min, tm_hour, tm_mday, tm_mon, tm_year, tm_isdst. */
  created: number[];
  databaseName: ByteString | null;
  serverVersion: ByteString | null;
  dumpVersion: ByteString | null;
}

export interface TocEntry {
  dumpId: number;
  hadDumper: number;
  catalogTableOid: ByteString | null;
  catalogOid: ByteString | null;
  tag: ByteString | null;
  desc: ByteString | null;
  section: number;
  defn: ByteString | null;
  dropStmt: ByteString | null;
  copyStmt: ByteString | null;
  namespace: ByteString | null;
  tablespace: ByteString | null;
  tableam: ByteString | null;
  /** Written by 1.16 only; 0 otherwise. */
  relkind: number;
  owner: ByteString | null;
  withOids: ByteString | null;
  dependencies: ByteString[];
  dataState: number;
  dataPos: bigint;
}

function malformed(where: string, what: string): IntegrityError {
  return new IntegrityError(`${where} is not a well-formed pg_dump custom archive: ${what}`);
}

/**
 * Pulls exact byte counts out of a stream of chunks (the decrypting chain), without ever holding
 * more than the chunk at hand: large fields are passed on in slices (take).
 */
export class ByteReader {
  private chunk: Buffer = Buffer.alloc(0);
  private at = 0;
  private ended = false;
  private readonly source: AsyncIterator<Buffer>;
  /** Bytes consumed so far. */
  position = 0;

  constructor(
    source: AsyncIterable<Buffer>,
    readonly where: string,
  ) {
    this.source = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.at >= this.chunk.length) {
      if (this.ended) return false;
      const next = await this.source.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      this.chunk = next.value;
      this.at = 0;
    }
    return true;
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill());
  }

  async byte(): Promise<number> {
    if (!(await this.fill())) throw malformed(this.where, `it ends early, at byte ${this.position}`);
    this.position++;
    return this.chunk[this.at++]!;
  }

  /** `n` bytes in slices of the chunks they arrive in. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) throw malformed(this.where, `it ends early, ${left} bytes short at byte ${this.position}`);
      const slice = this.chunk.subarray(this.at, this.at + Math.min(left, this.chunk.length - this.at));
      this.at += slice.length;
      this.position += slice.length;
      left -= slice.length;
      yield slice;
    }
  }

  async bytes(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const slice of this.take(n)) parts.push(slice);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

/** Integer and string reading/writing in the archive's own integer size. */
export class ArchiveCodec {
  constructor(readonly intSize: number, readonly offSize: number) {}

  int(value: number): Buffer {
    if (!Number.isSafeInteger(value) || value > 0x7fffffff || value < -0x80000000) throw new RangeError(`${value} does not fit an archive integer`);
    const out = Buffer.alloc(1 + this.intSize);
    out[0] = value < 0 ? 1 : 0;
    let magnitude = Math.abs(value);
    for (let b = 0; b < this.intSize; b++) {
      out[1 + b] = magnitude & 0xff;
      magnitude = Math.floor(magnitude / 256);
    }
    return out;
  }

  str(value: ByteString | null): Buffer {
    if (value === null) return this.int(-1);
    const bytes = Buffer.from(value, 'latin1');
    return Buffer.concat([this.int(bytes.length), bytes]);
  }

  offset(state: number, position: bigint): Buffer {
    const out = Buffer.alloc(1 + this.offSize);
    out[0] = state;
    let rest = position;
    for (let b = 0; b < this.offSize; b++) {
      out[1 + b] = Number(rest & 0xffn);
      rest >>= 8n;
    }
    return out;
  }

  async readInt(r: ByteReader): Promise<number> {
    const sign = await r.byte();
    let value = 0;
    for (let b = 0; b < this.intSize; b++) {
      const v = await r.byte();
      if (b >= 4 && v !== 0) throw malformed(r.where, `an integer at byte ${r.position} is larger than 32 bits`);
      value += v * 2 ** (8 * b);
    }
    if (sign > 1) throw malformed(r.where, `bad sign byte ${sign} at byte ${r.position - this.intSize - 1}`);
    // A large object OID above 2^31 is written as a negative int (WriteInt takes an int).
    if (value > (sign ? 0x80000000 : 0x7fffffff)) throw malformed(r.where, `an integer at byte ${r.position} is larger than 32 bits`);
    return sign ? -value : value;
  }

  async readStr(r: ByteReader): Promise<ByteString | null> {
    const length = await this.readInt(r);
    if (length < -1) throw malformed(r.where, `a string of length ${length} at byte ${r.position}`);
    if (length === -1) return null;
    return (await r.bytes(length)).toString('latin1');
  }

  async readOffset(r: ByteReader): Promise<{ state: number; position: bigint }> {
    const state = await r.byte();
    if (![OFFSET_POS_NOT_SET, OFFSET_POS_SET, OFFSET_NO_DATA].includes(state)) throw malformed(r.where, `unexpected data offset flag ${state}`);
    let position = 0n;
    for (let b = 0; b < this.offSize; b++) position |= BigInt(await r.byte()) << BigInt(8 * b);
    return { state, position };
  }
}

/** The header, refusing what this module cannot extend faithfully (another version, format or compression). */
export async function readHeader(r: ByteReader): Promise<ArchiveHeader> {
  const magic = await r.bytes(5);
  if (magic.toString('latin1') !== 'PGDMP') throw malformed(r.where, 'it does not start with PGDMP');
  const major = await r.byte();
  const minor = await r.byte();
  const rev = await r.byte();
  if (major !== 1 || !SUPPORTED_MINOR.includes(minor)) {
    throw new LifelineError('UnsupportedArchive', `${r.where} is a pg_dump archive of version ${major}.${minor}, which this Lifeline cannot extend (it writes 1.14, 1.15 and 1.16: pg_dump 14 to 17)`, {
      hint: 'use a Lifeline release that knows this archive version, or `lifeline decrypt --parts DIR` to get the parts as files',
    });
  }
  const intSize = await r.byte();
  const offSize = await r.byte();
  if (intSize < 4 || intSize > 8 || offSize < 4 || offSize > 16) throw malformed(r.where, `integer size ${intSize} / offset size ${offSize}`);
  const format = await r.byte();
  if (format !== ARCH_CUSTOM) throw malformed(r.where, `format ${format} is not the custom format (${ARCH_CUSTOM})`);
  const codec = new ArchiveCodec(intSize, offSize);
  const compression = minor >= 15 ? await r.byte() : await codec.readInt(r);
  if (compression !== 0) {
    throw new LifelineError('UnsupportedArchive', `${r.where} has compressed data blocks (${minor >= 15 ? 'algorithm' : 'level'} ${compression}); the archive part of a backup is written with -Z0`, {
      hint: 'this is not the archive part of a Lifeline parts backup; use `lifeline decrypt --parts DIR`',
    });
  }
  const created: number[] = [];
  for (let i = 0; i < 7; i++) created.push(await codec.readInt(r));
  return {
    major,
    minor,
    rev,
    intSize,
    offSize,
    format,
    compression,
    created,
    databaseName: await codec.readStr(r),
    serverVersion: await codec.readStr(r),
    dumpVersion: await codec.readStr(r),
  };
}

export function encodeHeader(h: ArchiveHeader): Buffer {
  const codec = new ArchiveCodec(h.intSize, h.offSize);
  return Buffer.concat([
    Buffer.from('PGDMP', 'latin1'),
    Buffer.from([h.major, h.minor, h.rev, h.intSize, h.offSize, h.format]),
    h.minor >= 15 ? Buffer.from([h.compression]) : codec.int(h.compression),
    ...h.created.map((v) => codec.int(v)),
    codec.str(h.databaseName),
    codec.str(h.serverVersion),
    codec.str(h.dumpVersion),
  ]);
}

export async function readToc(r: ByteReader, h: ArchiveHeader): Promise<TocEntry[]> {
  const codec = new ArchiveCodec(h.intSize, h.offSize);
  const count = await codec.readInt(r);
  if (count < 0) throw malformed(r.where, `a TOC of ${count} entries`);
  const toc: TocEntry[] = [];
  for (let i = 0; i < count; i++) {
    const dumpId = await codec.readInt(r);
    if (dumpId <= 0) throw malformed(r.where, `TOC entry ${i} has dump id ${dumpId}`);
    const entry: TocEntry = {
      dumpId,
      hadDumper: await codec.readInt(r),
      catalogTableOid: await codec.readStr(r),
      catalogOid: await codec.readStr(r),
      tag: await codec.readStr(r),
      desc: await codec.readStr(r),
      section: await codec.readInt(r),
      defn: await codec.readStr(r),
      dropStmt: await codec.readStr(r),
      copyStmt: await codec.readStr(r),
      namespace: await codec.readStr(r),
      tablespace: await codec.readStr(r),
      tableam: await codec.readStr(r),
      relkind: h.minor >= 16 ? await codec.readInt(r) : 0,
      owner: await codec.readStr(r),
      withOids: await codec.readStr(r),
      dependencies: [],
      dataState: 0,
      dataPos: 0n,
    };
    for (let dep = await codec.readStr(r); dep !== null; dep = await codec.readStr(r)) entry.dependencies.push(dep);
    const { state, position } = await codec.readOffset(r);
    entry.dataState = state;
    entry.dataPos = position;
    toc.push(entry);
  }
  return toc;
}

export function encodeToc(h: ArchiveHeader, toc: readonly TocEntry[]): Buffer {
  const codec = new ArchiveCodec(h.intSize, h.offSize);
  const out: Buffer[] = [codec.int(toc.length)];
  for (const e of toc) {
    out.push(
      codec.int(e.dumpId),
      codec.int(e.hadDumper),
      codec.str(e.catalogTableOid),
      codec.str(e.catalogOid),
      codec.str(e.tag),
      codec.str(e.desc),
      codec.int(e.section),
      codec.str(e.defn),
      codec.str(e.dropStmt),
      codec.str(e.copyStmt),
      codec.str(e.namespace),
      codec.str(e.tablespace),
      codec.str(e.tableam),
      ...(h.minor >= 16 ? [codec.int(e.relkind)] : []),
      codec.str(e.owner),
      codec.str(e.withOids),
      ...e.dependencies.map((d) => codec.str(d)),
      codec.str(null),
      codec.offset(e.dataState, e.dataPos),
    );
  }
  return Buffer.concat(out);
}

/** The TABLE entry of a table, by its catalog OID (pg_class), never by its name. */
export function tableEntryOf(toc: readonly TocEntry[], oid: number): TocEntry | undefined {
  return toc.find((e) => e.desc === 'TABLE' && e.catalogTableOid === PG_CLASS && e.catalogOid === String(oid));
}

/** A TABLE DATA entry already in the archive for this TABLE entry (pg_dump makes it depend on its table only). */
export function tableDataOfEntry(toc: readonly TocEntry[], table: TocEntry): TocEntry | undefined {
  return toc.find((e) => e.desc === 'TABLE DATA' && (e.catalogOid === table.catalogOid || e.dependencies[0] === String(table.dumpId)));
}

/** The client encoding the archive's data is in (its ENCODING entry: `SET client_encoding = 'UTF8';`). */
export function archiveEncoding(toc: readonly TocEntry[]): string | undefined {
  const defn = toc.find((e) => e.desc === 'ENCODING')?.defn;
  return defn ? /'([^']*)'/.exec(defn)?.[1] : undefined;
}

/**
 * The TABLE DATA entry pg_dump makes for a table (dumpTableData): catalog id (0, table OID),
 * tag/namespace/owner of the TABLE entry, section DATA, no definition, the COPY statement, one
 * dependency on the TABLE entry; data offset not set (the archive is written in one pass).
 */
export function tableDataEntry(table: TocEntry, dumpId: number, copyStmt: ByteString): TocEntry {
  return {
    dumpId,
    hadDumper: 1,
    catalogTableOid: '0',
    catalogOid: table.catalogOid,
    tag: table.tag,
    desc: 'TABLE DATA',
    section: SECTION_DATA,
    defn: null,
    dropStmt: null,
    copyStmt,
    namespace: table.namespace,
    tablespace: null,
    tableam: null,
    relkind: 0,
    owner: table.owner,
    withOids: 'false',
    dependencies: [String(table.dumpId)],
    dataState: OFFSET_POS_NOT_SET,
    dataPos: 0n,
  };
}

/**
 * `COPY "schema"."name" ("a", "b") FROM stdin;\n` as a byte string. The rows of a table part are
 * COPY text in UTF-8 (node-postgres always asks for it): an archive in another encoding gets
 * `WITH (ENCODING 'UTF8')` so the server converts them, and then only ASCII names can be written
 * into its statement (pg_restore sends it in the archive's encoding).
 */
export function copyStatement(t: { schema: string; name: string; columns: readonly string[] }, encoding: string | undefined): ByteString {
  const columns = t.columns.length ? ` (${t.columns.map(quoteIdent).join(', ')})` : '';
  const utf8 = encoding === undefined || /^(UTF8|UTF-8|UNICODE|SQL_ASCII)$/i.test(encoding);
  const sql = `COPY ${quoteIdent(t.schema)}.${quoteIdent(t.name)}${columns} FROM stdin${utf8 ? '' : " WITH (ENCODING 'UTF8')"};\n`;
  // eslint-disable-next-line no-control-regex
  if (!utf8 && /[^\x00-\x7f]/.test(sql)) {
    throw new LifelineError('UnsupportedArchive', `table ${t.schema}.${t.name} has non-ASCII names in a database whose encoding is ${encoding}: its COPY statement cannot be written into the archive`, {
      hint: 'restore it with `lifeline restore`, or take the parts as files with `lifeline decrypt --parts DIR`',
    });
  }
  return Buffer.from(sql, 'utf8').toString('latin1');
}

function compareBytes(a: ByteString | null, b: ByteString | null): number {
  return Buffer.compare(Buffer.from(a ?? '', 'latin1'), Buffer.from(b ?? '', 'latin1'));
}

/**
 * The TOC with the new TABLE DATA entries where pg_dump puts TABLE DATA entries: among the
 * archive's own ones in (namespace, name) order (pg_dump_sort.c sorts same-type objects by
 * namespace, then name, byte-wise), or, when it has none, at the start of the data section (before
 * SEQUENCE SET and BLOBS, the next priorities). Offsets the archive recorded point into its own
 * layout, which changes here: they become "not set", as in an archive written to a pipe.
 */
export function withTableData(toc: readonly TocEntry[], added: readonly TocEntry[]): TocEntry[] {
  const out: TocEntry[] = toc.map((e) => (e.dataState === OFFSET_POS_SET ? { ...e, dataState: OFFSET_POS_NOT_SET, dataPos: 0n } : e));
  const sorted = [...added].sort((a, b) => compareBytes(a.namespace, b.namespace) || compareBytes(a.tag, b.tag));
  for (const entry of sorted) {
    const existing = out.map((e, i) => ({ e, i })).filter(({ e }) => e.desc === 'TABLE DATA');
    let at: number;
    if (existing.length) {
      const after = existing.find(({ e }) => (compareBytes(e.namespace, entry.namespace) || compareBytes(e.tag, entry.tag)) > 0);
      at = after ? after.i : existing[existing.length - 1]!.i + 1;
    } else {
      at = out.findIndex((e) => e.section === SECTION_DATA || e.section === SECTION_POST_DATA);
      if (at < 0) at = out.length;
    }
    out.splice(at, 0, entry);
  }
  return out;
}

/** True if pg_dump wrote (or a writer must write) a data block for this entry. */
export function hasDataBlock(e: TocEntry): boolean {
  return e.dataState !== OFFSET_NO_DATA;
}

/** The start of a data block: its type and the dump id of its entry. */
export function blockStart(h: ArchiveHeader, dumpId: number, type = BLK_DATA): Buffer {
  return Buffer.concat([Buffer.from([type]), new ArchiveCodec(h.intSize, h.offSize).int(dumpId)]);
}

/** Bytes of a data block as length-prefixed chunks of at most `max` bytes each (no empty chunk: length 0 ends the block). */
export function* dataChunks(h: ArchiveHeader, data: Buffer, max = 1 << 20): Generator<Buffer> {
  const codec = new ArchiveCodec(h.intSize, h.offSize);
  for (let at = 0; at < data.length; at += max) {
    const slice = data.subarray(at, Math.min(at + max, data.length));
    yield codec.int(slice.length);
    yield slice;
  }
}

export function blockEnd(h: ArchiveHeader): Buffer {
  return new ArchiveCodec(h.intSize, h.offSize).int(0);
}

/** The next block's type and dump id, or undefined at the end of the archive. */
export async function readBlockStart(r: ByteReader, h: ArchiveHeader): Promise<{ type: number; dumpId: number } | undefined> {
  if (await r.atEnd()) return undefined;
  const type = await r.byte();
  if (type !== BLK_DATA && type !== BLK_BLOBS) throw malformed(r.where, `unknown data block type ${type} at byte ${r.position - 1}`);
  return { type, dumpId: await new ArchiveCodec(h.intSize, h.offSize).readInt(r) };
}

/** The rest of a block, byte for byte as it is in the archive (after readBlockStart), its framing checked. */
export async function* blockBody(r: ByteReader, h: ArchiveHeader, type: number): AsyncGenerator<Buffer> {
  const codec = new ArchiveCodec(h.intSize, h.offSize);
  const chunks = async function* (): AsyncGenerator<Buffer> {
    for (;;) {
      const length = await codec.readInt(r);
      if (length < 0) throw malformed(r.where, `a data chunk of length ${length} at byte ${r.position}`);
      yield codec.int(length);
      if (length === 0) return;
      yield* r.take(length);
    }
  };
  if (type === BLK_DATA) {
    yield* chunks();
    return;
  }
  for (;;) {
    const oid = await codec.readInt(r);
    yield codec.int(oid);
    if (oid === 0) return;
    yield* chunks();
  }
}
