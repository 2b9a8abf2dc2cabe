import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { LifelineError } from '../errors';

const STALE_MS = 30_000;

/**
 * Runs `fn` holding `<file>.lock` (created with O_EXCL), so that workers sharing a repository
 * (a local or network filesystem) take turns. A lock left by a writer that died is stale after 30 s.
 */
export async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lockFile = `${file}.lock`;
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await (await fs.open(lockFile, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600)).close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const stat = await fs.stat(lockFile).catch(() => undefined);
      if (stat && Date.now() - stat.mtimeMs > STALE_MS) await fs.rm(lockFile, { force: true });
      if (Date.now() > deadline) throw new LifelineError('Locked', `${file} stays locked (${lockFile})`, { retryable: true });
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockFile, { force: true });
  }
}
