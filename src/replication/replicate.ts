import { pipeline } from 'node:stream/promises';
import { writeKeyEnvelope, readKeyEnvelope } from '../catalog/key-envelope';
import { Catalog } from '../catalog/catalog';
import type { Manifest } from '../catalog/manifest';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { IntegrityError, LifelineError } from '../errors';
import { Meter } from '../pipeline/meter';
import { S3Storage, type UploadState } from '../storage/s3';
import type { BackupStorage } from '../storage/storage';
import { allStorages, storageNamed } from '../backup/repository';

export interface ReplicationHooks {
  /** The upload state a crashed attempt reported last (from its heartbeat). */
  resume?: UploadState;
  onProgress?(progress: { phase: 'uploading' | 'reading back'; bytes: number; upload?: UploadState }): void;
  signal?: AbortSignal;
}

export interface ReplicationResult {
  destination: string;
  backupId: string;
  status: 'replicated' | 'already-present';
  location: string;
  bytes: number;
  /** Parts a resumed upload found on the server and did not send again. */
  partsReused: number;
  durationMs: number;
}

/** The verified backup and a storage that holds it: the local repository, else any destination. */
async function findSource(config: LifelineConfig, db: DatabaseConfig, backupId: string, except: string): Promise<{ storage: BackupStorage; manifest: Manifest }> {
  for (const storage of allStorages(config, db)) {
    if (storage.name === except) continue;
    const manifest = await new Catalog(storage).find(backupId);
    if (manifest) return { storage, manifest };
  }
  throw new LifelineError('BackupNotFound', `no verified copy of backup ${backupId} in ${allStorages(config, db).map((s) => s.location).join(', ')}`, {
    hint: 'run `lifeline list --storage NAME` to see what each place holds',
  });
}

/** Streams the stored object back from the destination and compares size and SHA-256 with the manifest. */
async function readBack(storage: BackupStorage, manifest: Manifest, signal?: AbortSignal): Promise<string> {
  const meter = new Meter({ sha256: true });
  await pipeline(await storage.read(manifest.object.key), meter, async function* (source) {
    for await (const _ of source) void _;
  }, { signal });
  if (meter.bytes !== manifest.sizes.storedBytes || meter.sha256() !== manifest.sha256) {
    throw new IntegrityError(
      `${storage.describe(manifest.object.key)} reads back as ${meter.bytes} bytes with SHA-256 ${meter.sha256()}, expected ${manifest.sizes.storedBytes} bytes with ${manifest.sha256}`,
      'the copy was removed; the next attempt uploads it again',
    );
  }
  return meter.sha256();
}

/**
 * Copies one verified backup to one destination: data object (resumable multipart on S3), read
 * back and checked against the manifest's SHA-256, then the key envelope if the backup has one,
 * then the manifest, last and never over an existing one. Running it again is harmless.
 */
export async function replicateBackup(
  config: LifelineConfig,
  db: DatabaseConfig,
  backupId: string,
  destination: string,
  hooks: ReplicationHooks = {},
): Promise<ReplicationResult> {
  const started = Date.now();
  const target = storageNamed(config, db, destination);
  const result = (status: ReplicationResult['status'], manifest: Manifest, partsReused = 0): ReplicationResult => ({
    destination,
    backupId,
    status,
    location: target.describe(manifest.object.key),
    bytes: manifest.sizes.storedBytes,
    partsReused,
    durationMs: Date.now() - started,
  });

  const already = await new Catalog(target).find(backupId);
  const { storage: source, manifest } = await findSource(config, db, backupId, destination);
  if (already) {
    if (already.sha256 !== manifest.sha256) {
      throw new IntegrityError(`${target.describe(already.object.key)} holds a different backup under id ${backupId}`, 'compare both copies before deleting either');
    }
    return result('already-present', manifest);
  }

  const key = manifest.object.key;
  let partsReused = 0;
  if (!(await target.stat(key))) {
    if (target instanceof S3Storage) {
      // An upload this backup started without reporting it (a crash before the first heartbeat) is abandoned.
      if (!hooks.resume) await target.removeIncomplete(key);
      ({ partsReused } = await target.uploadResumable(key, {
        size: manifest.sizes.storedBytes,
        openRange: (range) => source.read(key, range),
        resume: hooks.resume,
        signal: hooks.signal,
        onState: (state) => hooks.onProgress?.({ phase: 'uploading', bytes: state.bytesDone, upload: state }),
      }));
    } else {
      const writer = await target.createWriter(key, { expectedBytes: manifest.sizes.storedBytes });
      try {
        await pipeline(await source.read(key), writer.stream, { signal: hooks.signal });
        await writer.publish();
      } catch (err) {
        await writer.abort();
        throw err;
      }
    }
  }
  hooks.onProgress?.({ phase: 'reading back', bytes: manifest.sizes.storedBytes });
  let readBackSha256: string;
  try {
    readBackSha256 = await readBack(target, manifest, hooks.signal);
  } catch (err) {
    // Not catalogued, so invisible; removed so the retry uploads a good copy.
    if (err instanceof IntegrityError) await target.delete(key);
    throw err instanceof IntegrityError ? new LifelineError(err.code, err.message, { retryable: true, hint: err.hint }) : err;
  }

  const envelope = await readKeyEnvelope(source, manifest);
  if (envelope) await writeKeyEnvelope(target, manifest, envelope);
  await new Catalog(target).add({
    ...manifest,
    object: { storage: destination, key },
    replica: { from: source.name, replicatedAt: new Date().toISOString(), readBackSha256 },
  });
  if (target instanceof S3Storage) await target.removeIncomplete(key);
  return result('replicated', manifest, partsReused);
}

/** Backup ids (oldest first) that a destination lacks, among those verified anywhere else. */
export async function missingReplicas(config: LifelineConfig, db: DatabaseConfig, destination: string): Promise<string[]> {
  const target = storageNamed(config, db, destination);
  const present = new Set((await new Catalog(target).list(db.name)).map((m) => m.id));
  const elsewhere = new Map<string, Manifest>();
  for (const storage of allStorages(config, db)) {
    if (storage.name === destination) continue;
    for (const m of await new Catalog(storage).list(db.name)) if (!present.has(m.id)) elsewhere.set(m.id, m);
  }
  return [...elsewhere.values()].sort((a, b) => a.startedAt.localeCompare(b.startedAt)).map((m) => m.id);
}
