import { pipeline } from 'node:stream/promises';
import { qualifiedName, type DumpRecord, type Verification } from '../catalog/manifest';
import type { Keyring } from '../crypto/keys';
import { IntegrityError } from '../errors';
import { pgRestoreListSink, tableDataOf, type TocSummary } from '../postgres/pg-restore-list';
import type { BackupStorage } from '../storage/storage';
import { StallWatch } from '../pipeline/stall';
import { checkWhole, openBackup } from './read-backup';

export interface VerifyHooks {
  onProgress?: (bytesRead: number) => void;
  signal?: AbortSignal;
  /** BACKUP_STALL_TIMEOUT: a read that brings no byte for this long fails with Stalled (default 10 min). */
  stallSeconds?: number;
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
