import { Encryptor } from '../crypto/encryptor';
import { DEFAULT_CHUNK_BYTES } from '../crypto/format';
import { partKey } from '../crypto/part-key';
import { createCompressor, type CompressionAlgorithm } from '../pipeline/compression';
import { Meter } from '../pipeline/meter';
import { runPipeline, type Stage } from '../pipeline/run';
import type { BackupStorage, StorageWriter } from '../storage/storage';
import type { PartRecord } from './part-record';

export interface PartTarget {
  storage: BackupStorage;
  /** The object key (dataKey() for the archive, partObjectKey() for the others). */
  key: string;
  backupId: string;
  /** The part's name: its key is derived from the data key, the backup id and this name. */
  name: string;
  dataKey: Buffer;
  compression: { algorithm: CompressionAlgorithm; level: number; threads: number };
}

/** What a written part measured: the fields of its PartRecord, and the compressed size for the totals. */
export type WrittenPart = Pick<PartRecord, 'rawBytes' | 'storedBytes' | 'sha256' | 'rawSha256'> & { compressedBytes: number };

/**
 * Writes one part: plain bytes → meter (SHA-256) → compress → meter → encrypt (the part's own key)
 * → meter (SHA-256) → temporary object → publish. Streams: no part is ever held in memory whole, and
 * no plaintext touches the disk. The meters are readable while it runs (progress of the whole dump).
 */
export class PartWriter {
  readonly raw = new Meter({ sha256: true });
  readonly compressed = new Meter();
  readonly stored = new Meter({ sha256: true });
  private writer?: StorageWriter;

  constructor(readonly target: PartTarget) {}

  /**
   * Runs `source` (a readable and any transforms, producing the plain bytes) into the part and
   * publishes it. On any failure, or when `signal` aborts, the temporary object is removed and
   * nothing is published.
   */
  async write(source: Stage[], signal: AbortSignal): Promise<WrittenPart> {
    const { storage, key, backupId, name, dataKey, compression } = this.target;
    const cipherKey = partKey(dataKey, backupId, name);
    // The source already runs (its COPY was sent when it was made): an error it meets before the
    // pipeline takes it over waits there for the pipeline instead of crashing the worker, and a source
    // the pipeline never takes over (the step failed or was cancelled first) is closed.
    const streams = source.filter((s) => typeof s !== 'function');
    for (const s of streams) s.on('error', () => undefined);
    let piped = false;
    try {
      signal.throwIfAborted();
      this.writer = await storage.createWriter(key);
      piped = true;
      await runPipeline(
        [
          ...source,
          this.raw,
          createCompressor(compression.algorithm, compression.level, compression.threads),
          this.compressed,
          new Encryptor(cipherKey, DEFAULT_CHUNK_BYTES),
          this.stored,
          this.writer.stream,
        ],
        signal,
      );
      await this.writer.publish();
    } catch (err) {
      if (!piped) for (const s of streams) s.destroy();
      await this.writer?.abort().catch(() => undefined);
      throw err;
    } finally {
      cipherKey.fill(0);
    }
    return {
      rawBytes: this.raw.bytes,
      storedBytes: this.stored.bytes,
      compressedBytes: this.compressed.bytes,
      sha256: this.stored.sha256(),
      rawSha256: this.raw.sha256(),
    };
  }
}
