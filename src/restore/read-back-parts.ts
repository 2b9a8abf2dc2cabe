import { Writable } from 'node:stream';
import type { Manifest } from '../catalog/manifest';
import type { PartRecord } from '../parts/part-record';
import { runPool } from '../parts/pool';
import { checkPart, openPart, partFailure, type PartReadChain } from '../parts/read-part';
import { runPipeline } from '../pipeline/run';
import type { BackupStorage } from '../storage/storage';

/** A sink that drops what it is given: reading back only proves the bytes. */
const discard = () => new Writable({ write: (_chunk, _enc, done) => done() });

/**
 * Reads some parts of a backup back completely, as the restore will read them (authenticated
 * decryption with each part's key, decompression, stored and plain SHA-256 and sizes), a few at a
 * time. What a table restore plans with: only the parts it will load, so that planning one table of
 * a large backup costs what that table costs.
 */
export async function readBackParts(
  storage: BackupStorage,
  manifest: Manifest,
  dataKey: Buffer,
  parts: readonly PartRecord[],
  options: { jobs?: number; signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
): Promise<void> {
  let done = 0;
  const open = new Set<PartReadChain>();
  const ticker = setInterval(() => options.onProgress?.(done + [...open].reduce((n, c) => n + c.stored.bytes, 0)), 2000);
  try {
    await runPool(
      [...parts].sort((a, b) => b.storedBytes - a.storedBytes),
      options.jobs ?? 2,
      async (part, signal) => {
        const chain = await openPart(storage, manifest, part, dataKey);
        open.add(chain);
        try {
          await runPipeline([...chain.stages, discard()], signal);
        } catch (err) {
          throw partFailure(err, chain.where);
        } finally {
          open.delete(chain);
        }
        checkPart(chain, part);
        done += part.storedBytes;
      },
      options.signal,
    );
  } finally {
    clearInterval(ticker);
  }
}
