import { pipeline } from 'node:stream/promises';
import { qualifiedName, type DumpRecord, type Verification } from '../catalog/manifest';
import type { Keyring } from '../crypto/keys';
import { IntegrityError } from '../errors';
import { pgRestoreListSink, tableDataOf, type TocSummary } from '../postgres/pg-restore-list';
import type { BackupStorage } from '../storage/storage';
import { checkWhole, openBackup } from './read-backup';

export interface VerifyHooks {
  onProgress?: (bytesRead: number) => void;
  signal?: AbortSignal;
}

/**
 * Reads a stored backup back the way a restore would: stored bytes (SHA-256) → decrypt (every chunk
 * authenticated) → decompress → plain archive (SHA-256) → `pg_restore --list`. Throws IntegrityError
 * naming what differs; returns what was checked.
 */
export async function verifyBackup(
  storage: BackupStorage,
  record: DumpRecord,
  keys: Keyring,
  hooks: VerifyHooks = {},
): Promise<{ verification: Verification; toc: TocSummary }> {
  const started = Date.now();
  const chain = await openBackup(storage, record, keys);
  const list = pgRestoreListSink();
  const ticker = setInterval(() => hooks.onProgress?.(chain.stored.bytes), 2000);
  const where = storage.describe(record.object.key);
  try {
    await pipeline(...chain.stages, list.sink, { signal: hooks.signal });
  } catch (err) {
    // Say which copy is damaged: the same backup may be kept in several places.
    if (err instanceof IntegrityError) throw new IntegrityError(`${where}: ${err.message}`, err.hint, err.details);
    throw err;
  } finally {
    clearInterval(ticker);
  }
  const toc = await list.toc;
  checkWhole(chain, record, where);
  if (record.type === 'full' || record.type === 'data-only') {
    const missing = record.tables.filter((t) => t.kind === 'table' && !tableDataOf(toc, t, record.tables));
    if (missing.length) {
      throw new IntegrityError(`${where}: archive has no data for ${missing.map(qualifiedName).join(', ')}`);
    }
  }
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
