import { createHash, type Hash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { IntegrityError } from '../errors';
import { runPipeline } from '../pipeline/run';
import { checkPart, partFailure, type PartReadChain } from './read-part';
import type { PartRecord } from './part-record';

interface Reading {
  chain: PartReadChain;
  iterator: AsyncIterator<Buffer>;
  done: Promise<void>;
  abort: AbortController;
}

/**
 * The plain bytes of one part, read as a sequence of chunks that may be paused: `pause()` closes the
 * stream (an S3 download left idle for minutes is cut off by the server or the request timeout), and
 * the next read opens the part again, decrypts up to where it stopped and checks those bytes are
 * the ones already used (SHA-256), then goes on. The last reading runs from the first byte to the
 * last, so `finish()` checks the whole part against the manifest as any other part.
 */
export class ResumablePart implements AsyncIterable<Buffer> {
  private reading?: Reading;
  private delivered = 0;
  private hash: Hash = createHash('sha256');
  private finished = false;

  constructor(
    private readonly open: () => Promise<PartReadChain>,
    private readonly part: PartRecord,
  ) {}

  private async start(): Promise<Reading> {
    const chain = await this.open();
    const abort = new AbortController();
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    const done = runPipeline([...chain.stages, out], abort.signal);
    // Failures surface through the iterator; this copy of them is awaited in finish() or dropped on pause.
    done.catch(() => undefined);
    const reading: Reading = { chain, iterator: out[Symbol.asyncIterator]() as AsyncIterator<Buffer>, done, abort };
    if (this.delivered > 0) await this.skipDelivered(reading);
    return reading;
  }

  /** Reads again the bytes delivered before the pause; they must be the same ones. */
  private async skipDelivered(reading: Reading): Promise<void> {
    const again = createHash('sha256');
    let left = this.delivered;
    while (left > 0) {
      const next = await reading.iterator.next();
      if (next.done) throw new IntegrityError(`${reading.chain.where} ended early when read again (after ${this.delivered - left} of ${this.delivered} bytes)`);
      const chunk = next.value;
      if (chunk.length <= left) {
        again.update(chunk);
        left -= chunk.length;
      } else {
        again.update(chunk.subarray(0, left));
        this.carry = chunk.subarray(left);
        left = 0;
      }
    }
    if (again.digest('hex') !== this.hash.copy().digest('hex')) {
      throw new IntegrityError(`${reading.chain.where} changed while it was being read: its first ${this.delivered} bytes differ the second time`);
    }
  }

  private carry?: Buffer;

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      try {
        this.reading ??= await this.start();
        let chunk: Buffer | undefined = this.carry;
        this.carry = undefined;
        if (!chunk) {
          const next = await this.reading.iterator.next();
          if (next.done) {
            this.finished = true;
            return;
          }
          chunk = next.value;
        }
        this.delivered += chunk.length;
        this.hash.update(chunk);
        yield chunk;
      } catch (err) {
        throw partFailure(err, this.reading?.chain.where ?? `part ${this.part.name}`);
      }
    }
  }

  /** Closes the stream; the next read opens the part again where it stopped. */
  async pause(): Promise<void> {
    const reading = this.reading;
    if (!reading || this.finished) return;
    this.reading = undefined;
    this.carry = undefined;
    reading.abort.abort();
    await reading.done.catch(() => undefined);
  }

  /** Once read to its end: the whole part is the one the manifest lists. */
  async finish(): Promise<void> {
    if (!this.reading || !this.finished) throw new Error(`part ${this.part.name} was not read to its end`);
    try {
      await this.reading.done;
    } catch (err) {
      throw partFailure(err, this.reading.chain.where);
    }
    checkPart(this.reading.chain, this.part);
  }

  /** Stops reading, whatever the state (after a failure elsewhere). */
  async close(): Promise<void> {
    if (this.finished) return;
    await this.pause();
  }
}
