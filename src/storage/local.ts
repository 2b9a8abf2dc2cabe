import { randomBytes } from 'node:crypto';
import { constants, createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { LifelineError } from '../errors';
import { classifyWriteError, type BackupStorage, type ByteRange, type StorageWriter, type StoredObject } from './storage';

const PARTIAL_SUFFIX = '.partial';

export class ObjectExistsError extends LifelineError {
  constructor(where: string) {
    super('ObjectExists', `${where} already exists; refusing to overwrite it`, { retryable: false });
  }
}

/** A repository folder on a local or mounted filesystem. */
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
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      await fs.access(dir, constants.W_OK);
    } catch (err) {
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
    const stream = new FileSink(await fs.open(temp, 'wx', 0o600).catch((err) => Promise.reject(classifyWriteError(err, final))), final);
    let settled = false;
    return {
      stream,
      publish: async () => {
        if (!stream.writableFinished) await finished(stream);
        try {
          const handle = await fs.open(temp, 'r');
          try {
            await handle.sync();
          } finally {
            await handle.close();
          }
          // link() fails when the target exists, unlike rename(): publishing never replaces a backup.
          try {
            await fs.link(temp, final);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ObjectExistsError(final);
            throw err;
          } finally {
            await fs.rm(temp, { force: true });
          }
          await syncDir(path.dirname(final));
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
    await fs.access(file, constants.R_OK).catch((err) => {
      throw new LifelineError('ObjectMissing', `${file} cannot be read: ${(err as Error).message}`, { cause: err });
    });
    if (range && range.end <= range.start) return Readable.from([]);
    return createReadStream(file, { highWaterMark: 1024 * 1024, ...(range && { start: range.start, end: range.end - 1 }) });
  }

  async replace(key: string, body: Buffer): Promise<void> {
    const final = this.file(key);
    await this.ensureDir(path.dirname(final));
    const temp = tempFileFor(final);
    try {
      await fs.writeFile(temp, body, { mode: 0o600, flag: 'wx', flush: true });
      await fs.rename(temp, final);
      await syncDir(path.dirname(final));
    } catch (err) {
      throw classifyWriteError(err, final);
    } finally {
      await fs.rm(temp, { force: true });
    }
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
    try {
      return await fs.readFile(this.file(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const s = await fs.stat(this.file(key));
      return { key, size: s.size, modified: s.mtime };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
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
        // Hidden folders (a drill's work folder) hold no catalogued objects.
        if (entry.isDirectory() && !entry.name.startsWith('.')) await walk(path.join(dir, entry.name), key);
        else if (entry.isFile() && !entry.name.startsWith('.') && key.startsWith(prefix)) {
          const s = await fs.stat(path.join(dir, entry.name));
          out.push({ key, size: s.size, modified: s.mtime });
        }
      }
    };
    // Walk only the folder the prefix points into.
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    await walk(dirPart ? this.file(dirPart) : this.location, dirPart);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.file(key), { force: true });
  }

  async removeIncomplete(prefix: string): Promise<string[]> {
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const base = prefix.slice(dirPart ? dirPart.length + 1 : 0);
    const dir = dirPart ? this.file(dirPart) : this.location;
    const removed: string[] = [];
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return removed;
      throw err;
    }
    for (const name of names) {
      if (name.startsWith(`.${base}`) && name.endsWith(PARTIAL_SUFFIX)) {
        await fs.rm(path.join(dir, name), { force: true });
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

/** Hidden and suffixed, so nothing that lists backups mistakes it for one. */
function tempFileFor(final: string): string {
  return path.join(path.dirname(final), `.${path.basename(final)}.${randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`);
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
