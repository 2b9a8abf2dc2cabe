import { createDecipheriv } from 'node:crypto';
import { Transform, TransformCallback } from 'node:stream';
import { IntegrityError } from '../errors';
import { ChunkBuffer } from './chunk-buffer';
import { HEADER_BYTES, KEY_BYTES, TAG_BYTES, chunkNonce, decodeHeader, type Header } from './format';

/** Decrypts Lifeline's chunked AES-256-GCM format, failing on any changed, missing or moved byte. */
export class Decryptor extends Transform {
  private readonly key: Buffer;
  private header?: Header;
  private readonly pending = new ChunkBuffer();
  private index = 0;

  constructor(dataKey: Buffer) {
    super();
    if (dataKey.length !== KEY_BYTES) throw new RangeError(`data key must be ${KEY_BYTES} bytes`);
    this.key = Buffer.from(dataKey);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.pending.push(data);
    try {
      if (!this.header) {
        if (this.pending.length < HEADER_BYTES) return done();
        this.header = decodeHeader(this.key, this.pending.take(HEADER_BYTES));
      }
      const sealed = this.header.chunkBytes + TAG_BYTES;
      // A full-size chunk is never the last one (the encryptor always ends with a short chunk),
      // so it can be opened as soon as it is complete.
      while (this.pending.length >= sealed) this.open(this.pending.takePieces(this.header.chunkBytes), this.pending.take(TAG_BYTES), false);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (!this.header) {
        // Lets decodeHeader say precisely what is wrong with a short or foreign stream.
        decodeHeader(this.key, this.pending.takeAll());
        return done();
      }
      if (this.pending.length < TAG_BYTES) {
        throw new IntegrityError(
          `encrypted stream is truncated: it ends after chunk ${this.index - 1} without its final chunk`,
        );
      }
      this.open(this.pending.takePieces(this.pending.length - TAG_BYTES), this.pending.take(TAG_BYTES), true);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  /**
   * Opens one chunk from the pieces it arrived in (no copy of the chunk is assembled) and pushes its
   * plaintext only once the tag has authenticated all of it.
   */
  private open(body: Buffer[], tag: Buffer, last: boolean): void {
    const header = this.header!;
    const index = this.index++;
    const decipher = createDecipheriv('aes-256-gcm', this.key, chunkNonce(header.noncePrefix, index, last));
    decipher.setAAD(header.raw);
    decipher.setAuthTag(tag);
    const plain = body.map((piece) => decipher.update(piece));
    try {
      decipher.final();
    } catch {
      throw new IntegrityError(
        last
          ? `chunk ${index} fails authentication as the final chunk: the backup is truncated or was modified`
          : `chunk ${index} fails authentication: the backup was modified, reordered or truncated`,
        undefined,
        { chunk: index },
      );
    }
    for (const piece of plain) this.push(piece);
  }
}
