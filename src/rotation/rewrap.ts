import { Catalog } from '../catalog/catalog';
import { currentWrapping, readKeyEnvelope, writeKeyEnvelope } from '../catalog/key-envelope';
import type { LifelineConfig } from '../config/config';
import { findDatabase } from '../config/config';
import { decodeHeader, HEADER_BYTES } from '../crypto/format';
import { keyringFor } from '../crypto/keys';
import { partKey } from '../crypto/part-key';
import { ARCHIVE_PART } from '../parts/part-names';
import { isParts } from '../parts/parts-of';
import { IntegrityError, LifelineError } from '../errors';
import { allStorages, storageNamed } from '../backup/repository';
import type { BackupStorage } from '../storage/storage';

/** One place whose backups a rotation re-wraps: a database in one storage. */
export interface RotationTarget {
  database: string;
  storage: string;
}

export function rotationTargets(config: LifelineConfig): RotationTarget[] {
  return config.databases.flatMap((db) => allStorages(config, db).map((s) => ({ database: db.name, storage: s.name })));
}

/** Ids of the verified backups there whose data key is not yet wrapped under `keyId`. */
export async function backupsToRewrap(config: LifelineConfig, target: RotationTarget, keyId: string): Promise<string[]> {
  const storage = storageNamed(config, findDatabase(config, target.database), target.storage);
  const ids: string[] = [];
  for (const manifest of await new Catalog(storage).list(target.database)) {
    if ((await currentWrapping(storage, manifest)).keyId !== keyId) ids.push(manifest.id);
  }
  return ids;
}

async function readHeader(storage: BackupStorage, key: string): Promise<Buffer | undefined> {
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of await storage.read(key, { start: 0, end: HEADER_BYTES })) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  } catch (err) {
    // An object in an archive storage class cannot be read without a restore request.
    if (err instanceof LifelineError && err.code === 'ObjectArchived') return undefined;
    throw err;
  }
}

/**
 * Re-wraps one backup's data key under the current master key, without touching its data. The
 * new wrapping is written only after it has been opened again and the data key it holds has been
 * checked against the backup's own header (key commitment), so no step leaves a backup that no
 * key can open; the old master key stays available for the backups not done yet.
 */
export async function rewrapBackup(
  config: LifelineConfig,
  target: RotationTarget,
  backupId: string,
  keyId: string,
  rotationId: string,
): Promise<'rewrapped' | 'already-current'> {
  const storage = storageNamed(config, findDatabase(config, target.database), target.storage);
  const manifest = await new Catalog(storage).get(backupId);
  const wrapping = await currentWrapping(storage, manifest);
  if (wrapping.keyId === keyId) return 'already-current';
  const context = { database: manifest.database, backupId: manifest.id };
  const keyring = keyringFor(config);
  const plaintext = await keyring.unwrap(wrapping, context);
  let check: Buffer | undefined;
  try {
    const rewrapped = await keyring.current.wrapDataKey(plaintext, context);
    if (rewrapped.keyId !== keyId) {
      throw new LifelineError('KeyChanged', `the current master key is ${rewrapped.keyId}, not ${keyId} which this rotation made`, {
        hint: 'the key configuration changed during the rotation; run `lifeline keys rotate` again',
      });
    }
    check = await keyring.unwrap(rewrapped, context);
    if (!check.equals(plaintext)) throw new IntegrityError(`re-wrapped key of ${backupId} does not open to the same data key`);
    const header = await readHeader(storage, manifest.object.key);
    if (header) {
      // Parts format: the data object is the archive part, encrypted under its own key derived from the data key.
      const objectKey = isParts(manifest) ? partKey(plaintext, manifest.id, ARCHIVE_PART) : plaintext;
      try {
        decodeHeader(objectKey, header); // throws WrongKeyError unless this data key encrypted this backup
      } finally {
        if (objectKey !== plaintext) objectKey.fill(0);
      }
    }
    const previous = await readKeyEnvelope(storage, manifest);
    await writeKeyEnvelope(storage, manifest, {
      envelopeVersion: 1,
      database: manifest.database,
      backupId: manifest.id,
      ...rewrapped,
      rewrappedAt: new Date().toISOString(),
      rotationId,
      previousKeyIds: [...(previous?.previousKeyIds ?? []), wrapping.keyId],
    });
    return 'rewrapped';
  } finally {
    plaintext.fill(0);
    check?.fill(0);
  }
}

export interface KeyUsage {
  keyId: string;
  provider: string;
  current: boolean;
  /** `storage/database` → backup ids. */
  backups: Record<string, string[]>;
}

/** Which master key opens which backup, everywhere backups are kept. */
export async function keyUsage(config: LifelineConfig): Promise<{ currentKeyId: string; keys: KeyUsage[] }> {
  const currentKeyId = await keyringFor(config).current.currentKeyId();
  const keys = new Map<string, KeyUsage>();
  for (const db of config.databases) {
    for (const storage of allStorages(config, db)) {
      for (const manifest of await new Catalog(storage).list(db.name)) {
        const w = await currentWrapping(storage, manifest);
        const usage = keys.get(w.keyId) ?? { keyId: w.keyId, provider: w.provider, current: w.keyId === currentKeyId, backups: {} };
        (usage.backups[`${storage.name}/${db.name}`] ??= []).push(manifest.id);
        keys.set(w.keyId, usage);
      }
    }
  }
  if (!keys.has(currentKeyId)) keys.set(currentKeyId, { keyId: currentKeyId, provider: keyringFor(config).current.kind, current: true, backups: {} });
  return { currentKeyId, keys: [...keys.values()].sort((a, b) => Number(b.current) - Number(a.current) || a.keyId.localeCompare(b.keyId)) };
}
