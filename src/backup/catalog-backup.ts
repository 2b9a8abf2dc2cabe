import { removeBackupObjects } from '../catalog/catalog';
import { MANIFEST_VERSION, type DumpRecord, type Manifest, type Verification } from '../catalog/manifest';
import { manifestKey, pendingKey } from '../catalog/naming';
import { findDatabase, type DatabaseConfig, type LifelineConfig } from '../config/config';
import { catalogFor, localStorageFor } from './repository';

/** Publishes the manifest (the backup becomes visible) and drops the pending record. Idempotent. */
export async function catalogBackup(db: DatabaseConfig, record: DumpRecord, verification: Verification, trigger: string): Promise<Manifest> {
  const manifest: Manifest = { ...record, manifestVersion: MANIFEST_VERSION, status: 'verified', verification, trigger };
  await catalogFor(db).add(manifest);
  await localStorageFor(db).delete(pendingKey(db.name, record.id));
  return manifest;
}

/**
 * Removes everything a failed backup left (temporary objects, the unverified dump, its pending
 * record), so nothing half-written lingers. A catalogued backup is never touched.
 */
export async function discardBackup(config: LifelineConfig, database: string, id: string): Promise<string[]> {
  const db = findDatabase(config, database);
  const storage = localStorageFor(db);
  if (await storage.stat(manifestKey(db.name, id))) return [];
  return [...(await storage.removeIncomplete(`${db.name}/${id}`)), ...(await removeBackupObjects(storage, db.name, id))];
}
