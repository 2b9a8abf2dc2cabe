import type { Readable, Writable } from 'node:stream';
import { LifelineError } from '../errors';

/**
 * Where backups live. Keys are slash-separated relative paths such as
 * `moneyflow/moneyflow_backup_20261126_030000.dump.zst.enc`.
 *
 * Writes are all-or-nothing: bytes go to a hidden temporary object and become visible under their
 * key only on `publish()`, which never replaces an existing object.
 */
export interface StorageWriter {
  stream: Writable;
  /** Makes the object visible; throws ObjectExistsError when the key is taken. */
  publish(): Promise<void>;
  /** Removes the temporary object. Safe to call more than once. */
  abort(): Promise<void>;
}

export interface ByteRange {
  start: number;
  /** Exclusive. */
  end: number;
}

export interface StoredObject {
  key: string;
  size: number;
  modified: Date;
}

export interface BackupStorage {
  /** The name operators use for it: `local`, `offsite`, … */
  readonly name: string;
  /** Where it is, for messages (a folder or s3://bucket/prefix). */
  readonly location: string;
  /** `expectedBytes` (an upper bound of the size) sizes the parts of a multipart upload. */
  createWriter(key: string, options?: { expectedBytes?: number }): Promise<StorageWriter>;
  /** The object's bytes, or those in [start, end) of it. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /** Writes a small object only if the key is free; returns false when it already exists. */
  putIfAbsent(key: string, body: Buffer): Promise<boolean>;
  /** Writes or atomically replaces a small object that is meant to change (a backup's key envelope). */
  replace(key: string, body: Buffer): Promise<void>;
  get(key: string): Promise<Buffer | undefined>;
  stat(key: string): Promise<StoredObject | undefined>;
  list(prefix: string): Promise<StoredObject[]>;
  delete(key: string): Promise<void>;
  /** Removes temporary objects left under `prefix` by writers that never published or aborted. */
  removeIncomplete(prefix: string): Promise<string[]>;
  /** Where a key is, for messages and manifests. */
  describe(key: string): string;
}

/** Errors of a filesystem that has no room left: no space, or the owner's quota is used up. */
const NO_ROOM = ['ENOSPC', 'EDQUOT'];

/**
 * A write that failed for want of room becomes `RepositoryFull` naming where it was writing;
 * retryable, so the step succeeds once space is freed. Any other error is returned unchanged.
 */
export function classifyWriteError(err: unknown, where: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (!code || !NO_ROOM.includes(code)) return err;
  const why = code === 'EDQUOT' ? 'the disk quota is used up' : 'the filesystem is full';
  return new LifelineError('RepositoryFull', `cannot write ${where}: ${why} (${code})`, {
    retryable: true,
    hint: `free space on the filesystem that holds ${where} (old backups: lifeline cleanup) or raise its quota; the step is retried`,
    cause: err,
  });
}
