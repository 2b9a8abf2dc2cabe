import { promises as fs } from 'node:fs';
import path from 'node:path';
import { LifelineError } from '../errors';
import { createFile, ensureDir, remove } from './safe-fs';

const STALE_MS = 30_000;

/**
 * Runs `fn` holding `<file>.lock` (created with O_EXCL), so that workers sharing a repository
 * (a local or network filesystem) take turns. A lock left by a writer that died is stale after 30 s.
 * `root` is the repository the file is in: no folder below it may be a symlink (safe-fs.ts).
 */
export async function withFileLock<T>(root: string, file: string, fn: () => Promise<T>): Promise<T> {
  const lockFile = `${file}.lock`;
  await ensureDir(root, path.dirname(file));
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await (await createFile(root, lockFile)).close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const stat = await fs.lstat(lockFile).catch(() => undefined);
      if (stat && Date.now() - stat.mtimeMs > STALE_MS) await remove(root, lockFile);
      if (Date.now() > deadline) throw new LifelineError('Locked', `${file} stays locked (${lockFile})`, { retryable: true });
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await remove(root, lockFile);
  }
}
