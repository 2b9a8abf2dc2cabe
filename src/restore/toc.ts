import type { Manifest } from '../catalog/manifest';
import type { Keyring } from '../crypto/keys';
import { openBackup } from '../backup/read-backup';
import { pgRestoreListSink, type TocSummary } from '../postgres/pg-restore-list';
import { runPipeline } from '../pipeline/run';
import type { BackupStorage } from '../storage/storage';

/**
 * The archive's table of contents. pg_dump writes it first, so reading stops as soon as
 * pg_restore --list has printed it instead of decrypting the whole backup.
 */
export async function readToc(storage: BackupStorage, manifest: Manifest, keys: Keyring): Promise<TocSummary> {
  const chain = await openBackup(storage, manifest, keys);
  const list = pgRestoreListSink();
  const stop = new AbortController();
  const done = list.toc.finally(() => stop.abort());
  await runPipeline([...chain.stages, list.sink], stop.signal).catch((err) => {
    if (!stop.signal.aborted) throw err;
  });
  return done;
}
