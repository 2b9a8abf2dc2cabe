import type { Duplex, Readable } from 'node:stream';
import { DatabaseError } from 'pg';
import type { DumpRecord } from '../catalog/manifest';
import { Decryptor } from '../crypto/decryptor';
import { partKey } from '../crypto/part-key';
import { IntegrityError, LifelineError } from '../errors';
import { createDecompressor } from '../pipeline/compression';
import { Meter } from '../pipeline/meter';
import type { BackupStorage } from '../storage/storage';
import type { PartRecord } from './part-record';
import { partObjectKeyOf } from './parts-of';

export interface PartReadChain {
  /** Stored bytes → meter → decrypt (the part's own key) → decompress → meter: pipe `stages` into any sink. */
  stages: [Readable, Meter, Decryptor, Duplex, Meter];
  stored: Meter;
  raw: Meter;
  /** For messages: the object and which part of which backup it is. */
  where: string;
}

export function partWhere(storage: BackupStorage, record: Pick<DumpRecord, 'id' | 'object' | 'compression'>, part: Pick<PartRecord, 'name'>): string {
  return `part ${part.name} of backup ${record.id} (${storage.describe(partObjectKeyOf(record, part))})`;
}

/**
 * Opens one part with the key derived for it from the backup's data key (see crypto/part-key.ts).
 * A missing object fails here, naming the part.
 */
export async function openPart(storage: BackupStorage, record: Pick<DumpRecord, 'id' | 'object' | 'compression'>, part: PartRecord, dataKey: Buffer): Promise<PartReadChain> {
  const where = partWhere(storage, record, part);
  const key = partObjectKeyOf(record, part);
  // Read at once, no stat first: a backup of thousands of small tables opens thousands of parts (a
  // stat is one more S3 request, or one more checked open of a local file, for each).
  const source = await storage.read(key).catch((err: unknown) => {
    if (err instanceof LifelineError && err.code === 'ObjectMissing') throw new IntegrityError(`${where} is missing`, 'restore from another copy (lifeline list --storage NAME) or another backup');
    throw err;
  });
  const stored = new Meter({ sha256: true });
  const raw = new Meter({ sha256: true });
  return {
    stages: [source, stored, new Decryptor(partKey(dataKey, record.id, part.name)), createDecompressor(record.compression.algorithm), raw],
    stored,
    raw,
    where,
  };
}

/**
 * A failure while reading a part, named after it. A part whose key commitment differs was not
 * written as this part of this backup (swapped with a sibling, or copied from another backup):
 * the data key itself was already proven by the manifest's MAC.
 */
export function partFailure(err: unknown, where: string): unknown {
  // Anything else on the reading side (zstd refusing its input, a storage read failing) is named too,
  // its retryability kept. The server's own errors (a COPY the target refused) stay theirs, for the caller to word.
  if (!(err instanceof LifelineError)) {
    if (!(err instanceof Error) || err.name === 'AbortError' || err instanceof DatabaseError) return err;
    return new LifelineError('PartReadFailed', `${where}: ${err.message}`, { retryable: true, cause: err });
  }
  if (err.code === 'WrongKey') return new IntegrityError(`${where} is not that part: it was written for another part or backup (its key commitment differs)`);
  if (err.code === 'IntegrityError' && !err.message.includes(where)) return new IntegrityError(`${where}: ${err.message}`, err.hint, err.details);
  return err;
}

/** Once the part has been read to its end: exactly the bytes the manifest recorded, stored and plain. */
export function checkPart(chain: PartReadChain, part: PartRecord): void {
  if (chain.stored.sha256() !== part.sha256 || chain.stored.bytes !== part.storedBytes) {
    throw new IntegrityError(`${chain.where} differs from what was written (${chain.stored.bytes} bytes, SHA-256 ${chain.stored.sha256()}; expected ${part.storedBytes} bytes, ${part.sha256})`);
  }
  if (chain.raw.sha256() !== part.rawSha256 || chain.raw.bytes !== part.rawBytes) {
    throw new IntegrityError(`${chain.where} decrypts to other bytes than were dumped`);
  }
}
