import type { Duplex, Readable } from 'node:stream';
import type { DumpRecord, Manifest } from '../catalog/manifest';
import { authenticateManifest } from '../catalog/authenticate';
import { Decryptor } from '../crypto/decryptor';
import { IntegrityError } from '../errors';
import { currentWrapping } from '../catalog/key-envelope';
import type { Keyring } from '../crypto/keys';
import { createDecompressor } from '../pipeline/compression';
import { Meter } from '../pipeline/meter';
import type { BackupStorage } from '../storage/storage';

export interface BackupReadChain {
  /** Stored bytes → meter → decrypt → decompress → meter: pipe `stages` into any sink. */
  stages: [Readable, Meter, Decryptor, Duplex, Meter];
  stored: Meter;
  raw: Meter;
}

/**
 * A backup's data key. A catalogued backup is read only through an authentic manifest; a fresh dump
 * (not yet catalogued) has none.
 */
export async function dataKeyFor(storage: BackupStorage, record: DumpRecord | Manifest, keys: Pick<Keyring, 'unwrap'>): Promise<Buffer> {
  return 'manifestVersion' in record
    ? authenticateManifest(storage, record, keys)
    : keys.unwrap(await currentWrapping(storage, record), { database: record.database, backupId: record.id });
}

/** The stages that turn a stored single-stream backup back into the plain pg_dump archive, measuring both ends. */
export async function openBackup(storage: BackupStorage, record: DumpRecord | Manifest, keys: Pick<Keyring, 'unwrap'>): Promise<BackupReadChain> {
  const dataKey = await dataKeyFor(storage, record, keys);
  const stored = new Meter({ sha256: true });
  const raw = new Meter({ sha256: true });
  const source = await storage.read(record.object.key);
  return {
    stages: [source, stored, new Decryptor(dataKey), createDecompressor(record.compression.algorithm), raw],
    stored,
    raw,
  };
}

/**
 * Once the chain has been read to its end: the stored bytes and the plain archive are exactly the
 * ones the manifest recorded. Every chunk authenticating is not enough (a chunk may be missing).
 */
export function checkWhole(chain: BackupReadChain, record: DumpRecord, where: string): void {
  if (chain.stored.sha256() !== record.sha256 || chain.stored.bytes !== record.sizes.storedBytes) {
    throw new IntegrityError(`${where}: stored object differs from what was written (SHA-256 ${chain.stored.sha256()}, expected ${record.sha256})`);
  }
  if (chain.raw.sha256() !== record.rawSha256 || chain.raw.bytes !== record.sizes.rawBytes) {
    throw new IntegrityError(`${where}: decrypted archive differs from what pg_dump produced`);
  }
}
