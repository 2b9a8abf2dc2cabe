import { createCipheriv, randomBytes } from 'node:crypto';
import { Transform, TransformCallback } from 'node:stream';
import { ChunkBuffer } from './chunk-buffer';
import { DEFAULT_CHUNK_BYTES, KEY_BYTES, NONCE_PREFIX_BYTES, chunkNonce, encodeHeader, type Header } from './format';

/** Encrypts a byte stream into Lifeline's chunked AES-256-GCM format (see format.ts). */
export class Encryptor extends Transform {
  private readonly key: Buffer;
  private readonly header: Header;
  private readonly pending = new ChunkBuffer();
  private index = 0;

  constructor(dataKey: Buffer, chunkBytes = DEFAULT_CHUNK_BYTES) {
    super();
    if (dataKey.length !== KEY_BYTES) throw new RangeError(`data key must be ${KEY_BYTES} bytes`);
    this.key = Buffer.from(dataKey);
    this.header = encodeHeader(this.key, chunkBytes, randomBytes(NONCE_PREFIX_BYTES));
    this.push(this.header.raw);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.pending.push(data);
    try {
      // Keep at least one byte back: the last chunk must be the short one, and we cannot know
      // that a full chunk is the last until the input ends.
      while (this.pending.length > this.header.chunkBytes) this.seal(this.pending.takePieces(this.header.chunkBytes), false);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      const full = this.pending.length === this.header.chunkBytes;
      this.seal(this.pending.takePieces(this.pending.length), !full);
      if (full) this.seal([], true);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  /**
   * Seals one chunk and pushes it out as it is encrypted, piece by piece, then its tag: no copy of the
   * chunk is made (assembling and concatenating 1 MiB chunks tripled the buffers a backup allocates).
   */
  private seal(plain: Buffer[], last: boolean): void {
    const cipher = createCipheriv('aes-256-gcm', this.key, chunkNonce(this.header.noncePrefix, this.index++, last));
    cipher.setAAD(this.header.raw);
    for (const piece of plain) this.push(cipher.update(piece));
    cipher.final();
    this.push(cipher.getAuthTag());
  }
}
