import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { LifelineError } from '../errors';
import { logger } from '../logger';
import { checkDir, createFile, ensureDir, openForReading, publishByLink, readFile, RepositoryTampered, remove, tempFileFor, writeFileAtomically } from './safe-fs';
import { classifyWriteError, type BackupStorage, type ByteRange, type StorageWriter, type StoredObject } from './storage';

const PARTIAL_SUFFIX = '.partial';

export class ObjectExistsError extends LifelineError {
  constructor(where: string) {
    super('ObjectExists', `${where} already exists; refusing to overwrite it`, { retryable: false });
  }
}

/**
 * A repository folder on a local or mounted filesystem. Whoever can write it may plant symlinks:
 * below the root, objects are opened only as regular files in real folders (safe-fs.ts).
 */
export class LocalStorage implements BackupStorage {
  readonly location: string;

  constructor(
    readonly name: string,
    root: string,
  ) {
    this.location = path.resolve(root);
  }

  private file(key: string): string {
    const file = path.resolve(this.location, key);
    if (!file.startsWith(this.location + path.sep)) throw new RangeError(`storage key escapes the repository: ${key}`);
    return file;
  }

  describe(key: string): string {
    return this.file(key);
  }

  private async ensureDir(dir: string): Promise<void> {
    try {
      await ensureDir(this.location, dir);
      await fs.access(dir, constants.W_OK);
    } catch (err) {
      if (err instanceof RepositoryTampered) throw err;
      const full = classifyWriteError(err, dir);
      if (full !== err) throw full;
      throw new LifelineError('RepositoryNotWritable', `backup directory ${dir} is not writable: ${(err as Error).message}`, {
        hint: 'set BACKUP_DIR to a folder the worker can write, or fix its permissions',
        cause: err,
      });
    }
  }

  async createWriter(key: string): Promise<StorageWriter> {
    const final = this.file(key);
    await this.ensureDir(path.dirname(final));
    const temp = tempFileFor(final);
    const stream = new FileSink(await createFile(this.location, temp).catch((err) => Promise.reject(classifyWriteError(err, final))), final);
    let settled = false;
    return {
      stream,
      publish: async () => {
        if (!stream.writableFinished) await finished(stream);
        try {
          const handle = await openForReading(this.location, temp);
          try {
            await handle.sync();
          } finally {
            await handle.close();
          }
          // Publishing never replaces a backup.
          if (!(await publishByLink(this.location, temp, final))) throw new ObjectExistsError(final);
        } catch (err) {
          throw classifyWriteError(err, final);
        }
        settled = true;
      },
      abort: async () => {
        if (settled) return;
        stream.destroy();
        await fs.rm(temp, { force: true });
        settled = true;
      },
    };
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const file = this.file(key);
    const handle = await openForReading(this.location, file).catch((err) => {
      if (err instanceof LifelineError) throw err;
      throw new LifelineError('ObjectMissing', `${file} cannot be read: ${(err as Error).message}`, { cause: err });
    });
    if (range && range.end <= range.start) {
      await handle.close();
      return Readable.from([]);
    }
    return handle.createReadStream({ highWaterMark: 1024 * 1024, ...(range && { start: range.start, end: range.end - 1 }) });
  }

  async replace(key: string, body: Buffer): Promise<void> {
    const final = this.file(key);
    await this.ensureDir(path.dirname(final));
    await writeFileAtomically(this.location, final, body).catch((err) => Promise.reject(classifyWriteError(err, final)));
  }

  async putIfAbsent(key: string, body: Buffer): Promise<boolean> {
    const writer = await this.createWriter(key);
    writer.stream.end(body);
    try {
      await writer.publish();
      return true;
    } catch (err) {
      await writer.abort();
      if (err instanceof ObjectExistsError) return false;
      throw err;
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    return readFile(this.location, this.file(key));
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    const file = this.file(key);
    const handle = await openForReading(this.location, file).catch((err) => ((err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : Promise.reject(err)));
    if (!handle) return undefined;
    try {
      const s = await handle.stat();
      return { key, size: s.size, modified: s.mtime };
    } finally {
      await handle.close();
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const entry of entries) {
        const key = rel ? `${rel}/${entry.name}` : entry.name;
        // Hidden names (a drill's work folder, temporary files) hold no catalogued objects.
        if (entry.name.startsWith('.')) continue;
        if (entry.isDirectory()) await walk(path.join(dir, entry.name), key);
        else if (!key.startsWith(prefix)) continue;
        else if (entry.isFile()) {
          const s = await fs.lstat(path.join(dir, entry.name)).catch(() => undefined);
          if (s?.isFile()) out.push({ key, size: s.size, modified: s.mtime });
        } else {
          // A symlink (or pipe, …) was planted: whatever it points to is not a backup of ours.
          logger.warn({ path: path.join(dir, entry.name) }, `${path.join(dir, entry.name)} is not a regular file: not listed (someone with write access changed the repository)`);
        }
      }
    };
    // Walk only the folder the prefix points into.
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const start = dirPart ? this.file(dirPart) : this.location;
    if (!(await checkDir(this.location, start))) return out;
    await walk(start, dirPart);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async delete(key: string): Promise<void> {
    await remove(this.location, this.file(key));
  }

  async removeIncomplete(prefix: string): Promise<string[]> {
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const base = prefix.slice(dirPart ? dirPart.length + 1 : 0);
    const dir = dirPart ? this.file(dirPart) : this.location;
    const removed: string[] = [];
    if (!(await checkDir(this.location, dir))) return removed;
    for (const name of await fs.readdir(dir)) {
      if (name.startsWith(`.${base}`) && name.endsWith(PARTIAL_SUFFIX)) {
        await remove(this.location, path.join(dir, name));
        removed.push(path.join(dir, name));
      }
    }
    return removed;
  }
}

/**
 * The bytes of a temporary object, written to its open file. Its own sink rather than
 * fs.WriteStream, so that a full disk fails with RepositoryFull naming the object.
 */
class FileSink extends Writable {
  constructor(
    private readonly handle: fs.FileHandle,
    private readonly where: string,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.writeAll(chunk).then(() => callback(), (err) => callback(classifyWriteError(err, this.where) as Error));
  }

  private async writeAll(chunk: Buffer): Promise<void> {
    for (let offset = 0; offset < chunk.length; ) offset += (await this.handle.write(chunk, offset)).bytesWritten;
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.handle.close().then(() => callback(err), () => callback(err));
  }
}
