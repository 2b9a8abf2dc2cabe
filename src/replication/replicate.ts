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
import { storedObjects } from '../parts/parts-of';
import { runPool } from '../parts/pool';

/** A resumable upload of one stored object; `key` absent: a heartbeat from before parts, the backup's one object. */
export type ObjectUpload = UploadState & { key?: string };

export interface ReplicationHooks {
  /** The uploads a crashed attempt reported last (from its heartbeat), each of one object. */
  resume?: ObjectUpload[];
  /** `uploads`: the multipart uploads in flight, each with its object's key. */
  onProgress?(progress: { phase: 'uploading' | 'reading back'; bytes: number; uploads?: ObjectUpload[] }): void;
  signal?: AbortSignal;
  /** BACKUP_PARALLEL_JOBS: objects of a parts backup copied this many at a time (default 2). */
  jobs?: number;
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

/** Streams a stored object back from the destination and compares size and SHA-256 with the manifest's. */
async function readBack(storage: BackupStorage, object: StoredObjectRecord, signal?: AbortSignal): Promise<string> {
  const meter = new Meter({ sha256: true });
  await pipeline(await storage.read(object.key), meter, async function* (source) {
    for await (const _ of source) void _;
  }, { signal });
  if (meter.bytes !== object.storedBytes || meter.sha256() !== object.sha256) {
    throw new IntegrityError(
      `${storage.describe(object.key)} reads back as ${meter.bytes} bytes with SHA-256 ${meter.sha256()}, expected ${object.storedBytes} bytes with ${object.sha256}`,
      'the copy was removed; the next attempt uploads it again',
    );
  }
  return meter.sha256();
}

type StoredObjectRecord = ReturnType<typeof storedObjects>[number];

/**
 * Copies one verified backup to one destination: every stored object (the one data object, or each
 * part of a parts backup; resumable multipart uploads on S3), each read back and checked against the
 * manifest's size and SHA-256, then the key envelope if the backup has one, then the manifest, last
 * and never over an existing one. Running it again is harmless.
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

  // Every object (a parts backup's parts, BACKUP_PARALLEL_JOBS at a time), each uploaded, read back
  // and checked; only then the key envelope and the manifest, so that a listing sees complete copies only.
  const uploads = new Map<string, ObjectUpload>();
  let bytesDone = 0;
  const report = (phase: 'uploading' | 'reading back') =>
    hooks.onProgress?.({ phase, bytes: bytesDone + [...uploads.values()].reduce((n, u) => n + u.bytesDone, 0), uploads: [...uploads.values()] });
  let partsReused = 0;
  let readBackSha256 = '';
  const objects = storedObjects(manifest).sort((a, b) => b.storedBytes - a.storedBytes);
  await runPool(objects, hooks.jobs ?? 2, async (object, signal) => {
    const { key } = object;
    if (!(await target.stat(key))) {
      if (target instanceof S3Storage) {
        const resume = hooks.resume?.find((u) => (u.key ?? manifest.object.key) === key);
        // An upload this backup started without reporting it (a crash before the first heartbeat) is abandoned.
        if (!resume) await target.removeIncomplete(key);
        const done = await target.uploadResumable(key, {
          size: object.storedBytes,
          openRange: (range) => source.read(key, range),
          resume,
          signal,
          onState: (state) => {
            uploads.set(key, { ...state, key });
            report('uploading');
          },
        });
        partsReused += done.partsReused;
      } else {
        const writer = await target.createWriter(key, { expectedBytes: object.storedBytes });
        try {
          await pipeline(await source.read(key), writer.stream, { signal });
          await writer.publish();
        } catch (err) {
          await writer.abort();
          throw err;
        }
      }
    }
    uploads.delete(key);
    bytesDone += object.storedBytes;
    report('reading back');
    try {
      const sha256 = await readBack(target, object, signal);
      if (key === manifest.object.key) readBackSha256 = sha256;
    } catch (err) {
      // Not catalogued, so invisible; removed so the retry uploads a good copy.
      if (err instanceof IntegrityError) await target.delete(key);
      throw err instanceof IntegrityError ? new LifelineError(err.code, err.message, { retryable: true, hint: err.hint }) : err;
    }
  }, hooks.signal);

  const envelope = await readKeyEnvelope(source, manifest);
  if (envelope) await writeKeyEnvelope(target, manifest, envelope);
  await new Catalog(target).add({
    ...manifest,
    object: { storage: destination, key: manifest.object.key },
    replica: { from: source.name, replicatedAt: new Date().toISOString(), readBackSha256 },
  });
  // Every object's name starts with `<id>.`: one listing finds any upload of this backup left open.
  if (target instanceof S3Storage) await target.removeIncomplete(manifest.object.key.slice(0, manifest.object.key.lastIndexOf(manifest.id) + manifest.id.length + 1));
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
