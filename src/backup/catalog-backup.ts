import { removeBackupObjects } from '../catalog/catalog';
import { sealManifest, type ManifestKeys } from '../catalog/authenticate';
import { manifestVersionFor, ManifestSchema, type DumpRecord, type Manifest, type Verification } from '../catalog/manifest';
import { manifestKey, pendingKey } from '../catalog/naming';
import { findDatabase, type DatabaseConfig, type LifelineConfig } from '../config/config';
import { catalogFor, localStorageFor } from './repository';

/**
 * Publishes the manifest (the backup becomes visible), sealed with a MAC under the backup's data
 * key, and drops the pending record. Idempotent.
 */
export async function catalogBackup(db: DatabaseConfig, record: DumpRecord, verification: Verification, trigger: string, keys: ManifestKeys): Promise<Manifest> {
  // Parsed first: the MAC covers exactly the fields a reader's parse keeps.
  const unsealed = ManifestSchema.parse({ ...record, manifestVersion: manifestVersionFor(record), status: 'verified', verification, trigger });
  const manifest = await sealManifest(localStorageFor(db), unsealed, keys);
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
