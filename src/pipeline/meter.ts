import { createHash, type Hash } from 'node:crypto';
import { Transform, TransformCallback } from 'node:stream';

/**
 * A pass-through stage that counts the bytes (and optionally hashes them) at one point of a
 * pipeline. Read `bytes` and `sha256()` after the stream has finished.
 */
export class Meter extends Transform {
  bytes = 0;
  private readonly hash?: Hash;
  private digest?: string;

  constructor(options: { sha256?: boolean } = {}) {
    super();
    if (options.sha256) this.hash = createHash('sha256');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    done(null, chunk);
  }

  /** Hex SHA-256 of everything that passed; only valid once the stream has ended. */
  sha256(): string {
    if (!this.hash) throw new Error('this meter does not hash');
    this.digest ??= this.hash.digest('hex');
    return this.digest;
  }
}
