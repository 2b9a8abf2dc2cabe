import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { qualifiedName, type DumpRecord, type TableCount, type Verification } from '../catalog/manifest';
import type { Keyring } from '../crypto/keys';
import { IntegrityError } from '../errors';
import { parseGlobals } from '../parts/globals';
import { isParts, partsOfTable } from '../parts/parts-of';
import type { PartRecord } from '../parts/part-record';
import { runPool } from '../parts/pool';
import { checkPart, openPart, partFailure, type PartReadChain } from '../parts/read-part';
import { pgRestoreListSink, tableDataOf, type TocSummary } from '../postgres/pg-restore-list';
import type { BackupStorage } from '../storage/storage';
import { StallWatch } from '../pipeline/stall';
import { checkWhole, dataKeyFor, openBackup } from './read-backup';

export interface VerifyHooks {
  onProgress?: (bytesRead: number) => void;
  signal?: AbortSignal;
  /** BACKUP_STALL_TIMEOUT: a read that brings no byte for this long fails with Stalled (default 10 min). */
  stallSeconds?: number;
  /** BACKUP_PARALLEL_JOBS: parts of a parts-format backup read this many at a time (default 2). */
  jobs?: number;
}

/**
 * Reads a stored backup back the way a restore would: stored bytes (SHA-256) → decrypt (every chunk
 * authenticated) → decompress → plain archive (SHA-256) → `pg_restore --list`. A parts-format
 * backup is read part by part, in parallel (verifyParts). Throws IntegrityError naming what
 * differs; returns what was checked, and the archive's table of contents.
 */
export async function verifyBackup(
  storage: BackupStorage,
  record: DumpRecord,
  keys: Keyring,
  hooks: VerifyHooks = {},
): Promise<{ verification: Verification; toc: TocSummary }> {
  if (isParts(record)) return verifyParts(storage, record, keys, hooks);
  const started = Date.now();
  const chain = await openBackup(storage, record, keys);
  const list = pgRestoreListSink();
  const where = storage.describe(record.object.key);
  // Heartbeats only while bytes arrive: a storage that stops answering fails the step, naming it.
  const watch = new StallWatch({
    what: `verifying ${where}`,
    stallSeconds: hooks.stallSeconds ?? 600,
    progress: () => chain.stored.bytes,
    onAlive: () => hooks.onProgress?.(chain.stored.bytes),
    diagnose: async () => ({ waitsOn: `${storage.location}, which sends nothing` }),
    signal: hooks.signal,
  });
  try {
    await pipeline(...chain.stages, list.sink, { signal: watch.signal });
  } catch (err) {
    // Say which copy is damaged: the same backup may be kept in several places.
    if (err instanceof IntegrityError) throw new IntegrityError(`${where}: ${err.message}`, err.hint, err.details);
    throw watch.reason(err);
  } finally {
    watch.stop();
  }
  const toc = await list.toc;
  checkWhole(chain, record, where);
  checkTablesHaveData(record, toc, where);
  const verification: Verification = {
    verifiedAt: new Date().toISOString(),
    method: 'sha256 + authenticated decryption + pg_restore --list',
    storedSha256: chain.stored.sha256(),
    rawSha256: chain.raw.sha256(),
    tocEntries: toc.entries,
    tableDataEntries: toc.tableDataEntries,
    durationMs: Date.now() - started,
  };
  return { verification, toc };
}

/** Whether the backup holds the rows of a table: in parts of its own, or in a TABLE DATA entry of the archive. */
export function tableHasData(record: Pick<DumpRecord, 'parts'>, toc: TocSummary, table: Pick<TableCount, 'schema' | 'name' | 'oid'>, all: readonly TableCount[]): boolean {
  return (table.oid !== undefined && partsOfTable(record, table.oid).length > 0) || tableDataOf(toc, table, all) !== undefined;
}

function checkTablesHaveData(record: DumpRecord, toc: TocSummary, where: string): void {
  if (record.type !== 'full' && record.type !== 'data-only') return;
  const missing = record.tables.filter((t) => t.kind === 'table' && !tableHasData(record, toc, t, record.tables));
  if (missing.length) throw new IntegrityError(`${where}: ${isParts(record) ? 'backup' : 'archive'} has no data for ${missing.map(qualifiedName).join(', ')}`);
  // A table stored as parts whose rows are in the archive too (pg_dump's --exclude-table-data missed
  // it) would be loaded twice by a full restore: duplicated rows, or a restore failing on its keys.
  const twice = record.tables.filter((t) => t.kind === 'table' && t.oid !== undefined && partsOfTable(record, t.oid).length > 0 && tableDataOf(toc, t, record.tables) !== undefined);
  if (twice.length) {
    throw new IntegrityError(`${where}: the rows of ${twice.map(qualifiedName).join(', ')} are both in the archive part and in parts of their own: a full restore would load them twice`, 'this backup cannot be restored whole; take a new one (BACKUP_FORMAT=stream if it happens again) and report it');
  }
}

/** The most a globals part may hold: it is parsed whole (a list of roles and tablespaces). */
const GLOBALS_LIMIT_BYTES = 64 << 20;

/**
 * A parts-format backup, every part read in parallel (`jobs` at a time, largest first): stored
 * bytes and plain bytes against the manifest's SHA-256s and sizes, each part decrypted with its
 * own key (a part swapped with a sibling fails its key commitment), and read for what it is: the
 * archive by `pg_restore --list`, a table part's COPY rows counted against the manifest, the
 * globals parsed and checked (parseGlobals). A failure names the part.
 */
async function verifyParts(storage: BackupStorage, record: DumpRecord, keys: Keyring, hooks: VerifyHooks): Promise<{ verification: Verification; toc: TocSummary }> {
  const started = Date.now();
  const parts = [...(record.parts ?? [])].sort((a, b) => b.storedBytes - a.storedBytes);
  const where = `backup ${record.id} in ${storage.location}`;
  // The manifest first: nothing in it (its parts list included) is used before it authenticates.
  const dataKey = await dataKeyFor(storage, record, keys);
  const total = (key: 'storedBytes' | 'rawBytes') => parts.reduce((n, p) => n + p[key], 0);
  if (total('storedBytes') !== record.sizes.storedBytes || total('rawBytes') !== record.sizes.rawBytes) {
    dataKey.fill(0);
    throw new IntegrityError(`${where}: its parts add up to ${total('storedBytes')} stored bytes and ${total('rawBytes')} plain ones, the manifest says ${record.sizes.storedBytes} and ${record.sizes.rawBytes}`);
  }
  const chains: PartReadChain[] = [];
  const bytesRead = () => chains.reduce((n, c) => n + c.stored.bytes, 0);
  const watch = new StallWatch({
    what: `verifying ${where}`,
    stallSeconds: hooks.stallSeconds ?? 600,
    progress: bytesRead,
    onAlive: () => hooks.onProgress?.(bytesRead()),
    diagnose: async () => ({ waitsOn: `${storage.location}, which sends nothing` }),
    signal: hooks.signal,
  });
  let toc: TocSummary | undefined;
  let archive: PartReadChain | undefined;
  try {
    await runPool(parts, hooks.jobs ?? 2, async (part, signal) => {
      const chain = await openPart(storage, record, part, dataKey);
      chains.push(chain);
      try {
        // Bytes first (the manifest's SHA-256s), then what they are.
        if (part.kind === 'archive') {
          const list = pgRestoreListSink();
          await pipeline(...chain.stages, list.sink, { signal });
          checkPart(chain, part);
          archive = chain;
          toc = await list.toc.catch((err: Error) => {
            throw new IntegrityError(`${err.message} (it was given ${chain.raw.bytes} plain bytes)`);
          });
        } else if (part.kind === 'table-data') {
          const rows = new LineCounter();
          await pipeline(...chain.stages, rows, { signal });
          checkPart(chain, part);
          if (rows.lines !== part.rows) throw new IntegrityError(`${chain.where} holds ${rows.lines} rows, the manifest says ${part.rows}`);
        } else {
          const bytes = await readGlobals(chain, part, signal);
          checkPart(chain, part);
          parseGlobals(bytes, chain.where);
        }
      } catch (err) {
        throw partFailure(watch.reason(err), chain.where);
      }
    }, watch.signal);
  } catch (err) {
    throw watch.reason(err);
  } finally {
    watch.stop();
    dataKey.fill(0);
  }
  if (!toc || !archive) throw new IntegrityError(`${where} lists no archive part`);
  checkTablesHaveData(record, toc, where);
  const verification: Verification = {
    verifiedAt: new Date().toISOString(),
    method: `sha256 + authenticated decryption of ${parts.length} parts (parts-v1) + pg_restore --list + COPY row counts`,
    storedSha256: archive.stored.sha256(),
    rawSha256: archive.raw.sha256(),
    tocEntries: toc.entries,
    tableDataEntries: toc.tableDataEntries + parts.filter((p) => p.kind === 'table-data').length,
    durationMs: Date.now() - started,
  };
  return { verification, toc };
}

async function readGlobals(chain: PartReadChain, part: PartRecord, signal: AbortSignal): Promise<Buffer> {
  if (part.rawBytes > GLOBALS_LIMIT_BYTES) throw new IntegrityError(`${chain.where} is ${part.rawBytes} bytes, more than a list of roles and tablespaces can be`);
  const chunks: Buffer[] = [];
  let bytes = 0;
  await pipeline(
    ...chain.stages,
    new Writable({
      write(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > GLOBALS_LIMIT_BYTES) return done(new IntegrityError(`${chain.where} holds more than the ${part.rawBytes} bytes the manifest says`));
        chunks.push(chunk);
        done();
      },
    }),
    { signal },
  );
  return Buffer.concat(chunks);
}

/** Counts newline bytes: one per row of COPY text (a newline inside a value is written as \n). */
class LineCounter extends Writable {
  lines = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) this.lines++;
    done();
  }
}
