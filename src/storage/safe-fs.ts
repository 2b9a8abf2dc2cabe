import { randomBytes } from 'node:crypto';
import { constants, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { LifelineError } from '../errors';

/**
 * Files in a folder Lifeline owns (the repository, BACKUP_DIR) whose contents whoever can write
 * the folder may have changed. The root is the operator's choice and trusted (it may itself be a
 * symlink); below it, every folder must be a real folder and every file a regular file, or the
 * operation is refused. Otherwise a symlink planted at a predictable name (audit/audit.jsonl, a
 * drill report, a temporary file) would make the worker (often root) create or overwrite any file.
 *
 * Files are opened with O_NOFOLLOW (new ones with O_CREAT|O_EXCL), then the opened file is
 * checked to be the one at the path (same inode, every folder above it still real): a folder
 * swapped for a symlink between the checks and the open is caught before a byte is written.
 */

type Expected = 'a folder' | 'a regular file';

export class RepositoryTampered extends LifelineError {
  constructor(where: string, found: string, expected: Expected) {
    super('RepositoryTampered', `${where} is ${found}, where Lifeline keeps ${expected}: refusing to use it`, {
      retryable: false,
      hint: `someone with write access to the repository changed it: inspect ${where} (and who can write there), remove what Lifeline did not put there, then run the step again`,
      details: { path: where, found, expected },
    });
  }
}

const isMissing = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

async function describe(where: string, stats?: Stats): Promise<string> {
  const s = stats ?? (await fs.lstat(where).catch(() => undefined));
  if (!s) return 'gone';
  if (s.isSymbolicLink()) return `a symbolic link to ${await fs.readlink(where).catch(() => '(unreadable)')}`;
  if (s.isDirectory()) return 'a folder';
  if (s.isFile()) return s.nlink > 1 ? `a regular file with ${s.nlink} hard links` : 'a regular file';
  if (s.isFIFO()) return 'a named pipe';
  if (s.isSocket()) return 'a socket';
  return 'a device';
}

/** `target`'s path below `root`, refused when it is not strictly inside it. */
function partsBelow(root: string, target: string): string[] {
  const relative = path.relative(path.resolve(root), path.resolve(target));
  if (!relative || relative.startsWith('..') || path.isAbsolute(relative)) throw new RangeError(`${target} is not inside ${root}`);
  return relative.split(path.sep);
}

/**
 * Checks that every folder from below `root` down to `dir` (inclusive) is a real folder; false
 * when one of them does not exist. With `create`, missing folders are made (mode 0700).
 */
async function checkFolders(root: string, dir: string, create: boolean): Promise<boolean> {
  if (path.resolve(dir) === path.resolve(root)) return true;
  let current = path.resolve(root);
  for (const part of partsBelow(root, dir)) {
    current = path.join(current, part);
    if (create) {
      await fs.mkdir(current, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    }
    let stats: Stats;
    try {
      stats = await fs.lstat(current);
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
    if (!stats.isDirectory()) throw new RepositoryTampered(current, await describe(current, stats), 'a folder');
  }
  return true;
}

/** Makes `dir` and the folders above it inside `root` (the root itself too), refusing any that is not a real folder. */
export async function ensureDir(root: string, dir: string): Promise<void> {
  await fs.mkdir(root, { recursive: true, mode: 0o700 });
  await checkFolders(root, dir, true);
}

/** True when `dir` exists inside `root` with only real folders on the way; false when missing. */
export function checkDir(root: string, dir: string): Promise<boolean> {
  return checkFolders(root, dir, false);
}

/**
 * Opens `file` (inside `root`) without following a symlink, and proves the open file is the regular
 * file at that path. `flags` are the usual O_* flags; O_NONBLOCK keeps a planted FIFO from hanging.
 */
async function openChecked(root: string, file: string, flags: number, options: { create?: boolean; singleLink?: boolean } = {}): Promise<fs.FileHandle> {
  const dir = path.dirname(file);
  if (options.create) await ensureDir(root, dir);
  else if (!(await checkDir(root, dir))) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${file}'`), { code: 'ENOENT', path: file });
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (err) {
    // A symlink at the name: ELOOP (Linux), EMLINK (BSD). EEXIST (O_EXCL) is for the caller.
    if (['ELOOP', 'EMLINK'].includes((err as NodeJS.ErrnoException).code ?? '')) throw new RepositoryTampered(file, await describe(file), 'a regular file');
    throw err;
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile() || (options.singleLink && opened.nlink > 1)) throw new RepositoryTampered(file, await describe(file, opened), 'a regular file');
    const there = await fs.lstat(file).catch(() => undefined);
    if (!there || there.ino !== opened.ino || there.dev !== opened.dev || !(await checkDir(root, dir))) {
      throw new RepositoryTampered(file, `${await describe(file)} (the file opened there was replaced as it was opened)`, 'a regular file');
    }
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** A regular file's bytes, or undefined when it does not exist. */
export async function readFile(root: string, file: string): Promise<Buffer | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await openChecked(root, file, constants.O_RDONLY);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** Opens an existing regular file for reading (throws ENOENT when missing). */
export function openForReading(root: string, file: string): Promise<fs.FileHandle> {
  return openChecked(root, file, constants.O_RDONLY);
}

/** Creates a new file (mode 0600) and its folders; fails with EEXIST when the name is taken, by anything. */
export function createFile(root: string, file: string): Promise<fs.FileHandle> {
  return openChecked(root, file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, { create: true });
}

/** Appends to a log (made on first use), then syncs. A file with other hard links is refused: its bytes may be another file's. */
export async function appendFile(root: string, file: string, data: string | Buffer): Promise<void> {
  const handle = await openChecked(root, file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, { create: true, singleLink: true });
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Hidden and suffixed, so nothing that lists the folder mistakes it for one of its files. */
export function tempFileFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.partial`);
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `body` to `file` through a new temporary file, so readers see the old or the new file
 * whole. `exclusive`: published with link(), which never replaces anything (false when the name is
 * taken). Otherwise renamed over the name, which must be free or a regular file.
 */
export async function writeFileAtomically(root: string, file: string, body: string | Buffer, exclusive = false): Promise<boolean> {
  const temp = tempFileFor(file);
  const handle = await createFile(root, temp);
  try {
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (exclusive) return await publishByLink(root, temp, file);
    if (!(await checkDir(root, path.dirname(file)))) throw new RepositoryTampered(path.dirname(file), 'gone', 'a folder');
    const existing = await fs.lstat(file).catch((err) => (isMissing(err) ? undefined : Promise.reject(err)));
    if (existing && !existing.isFile()) throw new RepositoryTampered(file, await describe(file, existing), 'a regular file');
    await fs.rename(temp, file);
    await syncDir(path.dirname(file));
    return true;
  } finally {
    await fs.rm(temp, { force: true });
  }
}

/**
 * Publishes a complete (synced) temporary file under `file` with link(), which never replaces
 * anything, a symlink included: false when the name is taken. The temporary name goes either way.
 */
export async function publishByLink(root: string, temp: string, file: string): Promise<boolean> {
  try {
    if (!(await checkDir(root, path.dirname(file)))) throw new RepositoryTampered(path.dirname(file), 'gone', 'a folder');
    await fs.link(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await fs.rm(temp, { force: true });
  }
  await syncDir(path.dirname(file));
  return true;
}

/** Removes `target` (recursively; a symlink is removed, never followed) after checking the folders above it. */
export async function remove(root: string, target: string): Promise<void> {
  if (!(await checkDir(root, path.dirname(target)))) return;
  await fs.rm(target, { recursive: true, force: true });
}
