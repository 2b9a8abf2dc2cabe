import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DumpRecord, TableCount } from '../catalog/manifest';
import { IntegrityError } from '../errors';
import type { BackupStorage } from '../storage/storage';
import {
  archiveEncoding,
  blockBody,
  blockEnd,
  blockStart,
  ByteReader,
  COPY_END_MARKER,
  copyStatement,
  dataChunks,
  encodeHeader,
  encodeToc,
  hasDataBlock,
  OFFSET_POS_SET,
  readBlockStart,
  readHeader,
  readToc,
  tableDataEntry,
  tableDataOfEntry,
  tableEntryOf,
  withTableData,
  type ArchiveHeader,
  type TocEntry,
} from './custom-archive';
import { ARCHIVE_PART } from './part-names';
import type { PartRecord } from './part-record';
import { partsOfTable } from './parts-of';
import { checkPart, openPart, partFailure } from './read-part';
import { ResumablePart } from './resumable-part';

type PartsRecord = Pick<DumpRecord, 'id' | 'object' | 'compression' | 'parts' | 'tables'>;

export interface AssembledArchive {
  /** Bytes written and their SHA-256. */
  bytes: number;
  sha256: string;
  /** Tables whose rows came from table parts, and how many parts that was. */
  tables: number;
  tableParts: number;
  /**
   * The TOC again, with each data block's position (as pg_dump rewrites it when it writes to a
   * file): same length, to be written at `position` by a caller whose output can seek.
   */
  located: { position: number; toc: Buffer };
}

/** Writes to a stream and waits when it is full; a stream that fails or closes fails the next write. */
class Sink {
  bytes = 0;
  private readonly hash = createHash('sha256');
  private failure?: Error;

  constructor(private readonly out: Writable) {
    // Kept, not thrown at large: a full disk or a reader that went away fails the next write.
    out.on('error', (err) => (this.failure ??= err));
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.out.destroyed) throw this.out.errored ?? new Error('the output was closed');
    this.bytes += chunk.length;
    this.hash.update(chunk);
    if (this.out.write(chunk)) return;
    const closed = new AbortController();
    try {
      await Promise.race([
        once(this.out, 'drain', { signal: closed.signal }),
        once(this.out, 'close', { signal: closed.signal }).then(() => Promise.reject(this.failure ?? this.out.errored ?? new Error('the output was closed'))),
      ]);
    } finally {
      closed.abort();
    }
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

function latin1(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

interface TableToLoad {
  table: TableCount;
  parts: PartRecord[];
  entry: TocEntry;
}

/**
 * The archive part's TOC with a TABLE DATA entry for each table stored as parts. Each is found
 * by the OID the manifest records (the TABLE entry with that pg_class OID), never by name; the
 * name in the TOC must still be the manifest's, and the table must have no data in the archive.
 */
function planTables(record: PartsRecord, toc: readonly TocEntry[], where: string): { toc: TocEntry[]; loads: TableToLoad[] } {
  const encoding = archiveEncoding(toc);
  const namesComparable = encoding === undefined || /^(UTF8|SQL_ASCII)$/i.test(encoding);
  const oids = [...new Set((record.parts ?? []).filter((p) => p.kind === 'table-data').map((p) => p.tableOid!))];
  let nextId = Math.max(0, ...toc.map((e) => e.dumpId));
  const loads: TableToLoad[] = [];
  for (const oid of oids) {
    const table = record.tables.find((t) => t.oid === oid && t.kind === 'table');
    const parts = partsOfTable(record, oid);
    if (!table) throw new IntegrityError(`backup ${record.id} lists parts of table OID ${oid} (${parts[0]?.name}) but no such table`);
    const label = `${table.schema}.${table.name} (OID ${oid})`;
    const tableEntry = tableEntryOf(toc, oid);
    if (!tableEntry) throw new IntegrityError(`${where} has no TABLE entry for ${label}, whose rows are in part ${parts[0]!.name}`);
    if (namesComparable && (tableEntry.namespace !== latin1(table.schema) || tableEntry.tag !== latin1(table.name))) {
      throw new IntegrityError(`${where}: the TABLE entry of OID ${oid} is not ${label}, the table the manifest names`);
    }
    const existing = tableDataOfEntry(toc, tableEntry);
    if (existing) throw new IntegrityError(`${where} already holds the rows of ${label} (entry ${existing.dumpId}), which are in table parts too`);
    if (!table.columns) throw new IntegrityError(`backup ${record.id} records no columns for ${label}, stored as parts`);
    const copy = copyStatement({ schema: table.schema, name: table.name, columns: table.columns }, encoding);
    loads.push({ table, parts, entry: tableDataEntry(tableEntry, ++nextId, copy) });
  }
  return { toc: withTableData(toc, loads.map((l) => l.entry)), loads };
}

/** Bytes of a table's rows per archive chunk: fixed, so the same backup always gives the same archive. */
const CHUNK_BYTES = 128 * 1024;

/** Cuts a stream of any chunking into data chunks of exactly CHUNK_BYTES (the last one shorter). */
class FixedChunks {
  private pieces: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly sink: Sink,
    private readonly header: ArchiveHeader,
  ) {}

  async push(data: Buffer): Promise<void> {
    for (let at = 0; at < data.length; ) {
      const take = Math.min(CHUNK_BYTES - this.size, data.length - at);
      this.pieces.push(data.subarray(at, at + take));
      this.size += take;
      at += take;
      if (this.size === CHUNK_BYTES) await this.flush();
    }
  }

  async flush(): Promise<void> {
    if (!this.size) return;
    const chunk = Buffer.concat(this.pieces, this.size);
    this.pieces = [];
    this.size = 0;
    for (const piece of dataChunks(this.header, chunk, CHUNK_BYTES)) await this.sink.write(piece);
  }
}

/** One table's TABLE DATA block: the rows of its parts, in order, each checked against the manifest. */
async function writeTableData(sink: Sink, header: ArchiveHeader, load: TableToLoad, open: (part: PartRecord) => ReturnType<typeof openPart>, blockAt: Map<number, number>): Promise<void> {
  blockAt.set(load.entry.dumpId, sink.bytes);
  await sink.write(blockStart(header, load.entry.dumpId));
  const chunks = new FixedChunks(sink, header);
  for (const part of load.parts) {
    const chain = await open(part);
    try {
      const [source, stored, decrypt, decompress, raw] = chain.stages;
      await pipeline(source, stored, decrypt, decompress, raw, async (rows: AsyncIterable<Buffer>) => {
        for await (const chunk of rows) await chunks.push(chunk);
      });
    } catch (err) {
      throw partFailure(err, chain.where);
    }
    checkPart(chain, part);
  }
  await chunks.flush();
  // pg_dump (14 to 17) ends the COPY data with an end-of-data line, as a chunk of its own.
  for (const piece of dataChunks(header, COPY_END_MARKER)) await sink.write(piece);
  await sink.write(blockEnd(header));
}

/**
 * Writes one standard pg_dump custom archive from a parts-format backup: the archive part's header
 * and TOC with a TABLE DATA entry added for each table stored as parts, then the data blocks in TOC
 * order, the archive part's own blocks (large objects, tables not stored as parts) copied as they
 * are and each table's parts decrypted one after another into its block. Streams throughout
 * (memory: one chunk and the TOC); every part is authenticated and checked against the manifest,
 * and any failure throws (the caller discards what was written).
 */
export async function writeArchiveFromParts(storage: BackupStorage, record: PartsRecord, dataKey: Buffer, out: Writable): Promise<AssembledArchive> {
  const archivePart = (record.parts ?? []).find((p) => p.name === ARCHIVE_PART);
  if (!archivePart) throw new IntegrityError(`backup ${record.id} lists no archive part`);
  const open = (part: PartRecord) => openPart(storage, record, part, dataKey);
  const archive = new ResumablePart(() => open(archivePart), archivePart);
  const sink = new Sink(out);
  try {
    const where = `part ${ARCHIVE_PART} of backup ${record.id}`;
    const reader = new ByteReader(archive, where);
    const header = await readHeader(reader);
    const plan = planTables(record, await readToc(reader, header), where);
    await sink.write(encodeHeader(header));
    const tocAt = sink.bytes;
    const tocBytes = encodeToc(header, plan.toc);
    await sink.write(tocBytes);
    const blockAt = new Map<number, number>();

    // Blocks in TOC order: before each of the archive's own blocks, the new ones listed before it.
    const position = new Map(plan.toc.map((e, i) => [e.dumpId, i]));
    const added = new Set(plan.loads.map((l) => l.entry.dumpId));
    const pending = [...plan.loads].sort((a, b) => position.get(a.entry.dumpId)! - position.get(b.entry.dumpId)!);
    const writePending = async (before: number) => {
      if (!pending.length || position.get(pending[0]!.entry.dumpId)! > before) return;
      // The archive part waits while tables load: its stream is closed meanwhile, and read again after.
      await archive.pause();
      while (pending.length && position.get(pending[0]!.entry.dumpId)! < before) await writeTableData(sink, header, pending.shift()!, open, blockAt);
    };
    for (let block = await readBlockStart(reader, header); block; block = await readBlockStart(reader, header)) {
      const at = position.get(block.dumpId);
      if (at === undefined || added.has(block.dumpId) || !hasDataBlock(plan.toc[at]!)) throw new IntegrityError(`${where} holds a data block for entry ${block.dumpId}, which has no data in its TOC`);
      await writePending(at);
      blockAt.set(block.dumpId, sink.bytes);
      await sink.write(blockStart(header, block.dumpId, block.type));
      for await (const piece of blockBody(reader, header, block.type)) await sink.write(piece);
    }
    await archive.finish();
    await writePending(Number.POSITIVE_INFINITY);
    const located = encodeToc(
      header,
      plan.toc.map((e) => (blockAt.has(e.dumpId) ? { ...e, dataState: OFFSET_POS_SET, dataPos: BigInt(blockAt.get(e.dumpId)!) } : e)),
    );
    if (located.length !== tocBytes.length) throw new Error(`the TOC with offsets is ${located.length} bytes, not ${tocBytes.length}`);
    return {
      bytes: sink.bytes,
      sha256: sink.digest(),
      tables: plan.loads.length,
      tableParts: plan.loads.reduce((n, l) => n + l.parts.length, 0),
      located: { position: tocAt, toc: located },
    };
  } finally {
    await archive.close();
  }
}
