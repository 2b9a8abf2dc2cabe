import { LifelineError } from '../errors';
import type { BackupStorage } from '../storage/storage';
import { parseManifest, type Manifest } from './manifest';
import { MANIFEST_SUFFIX, manifestKey, parseBackupId } from './naming';

/**
 * The catalog is the manifests in the repository: it needs no database and no Temporal history,
 * so backups can be listed and restored after everything else is gone.
 */
export class Catalog {
  constructor(readonly storage: BackupStorage) {}

  /** Every verified backup, oldest first by the time recorded in its manifest. */
  async list(database?: string): Promise<Manifest[]> {
    const objects = await this.storage.list(database ? `${database}/` : '');
    const manifests: Manifest[] = [];
    for (const object of objects) {
      if (!object.key.endsWith(MANIFEST_SUFFIX)) continue;
      const body = await this.storage.get(object.key);
      if (body) manifests.push(parseManifest(body.toString('utf8'), this.storage.describe(object.key)));
    }
    return manifests.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
  }

  async find(id: string): Promise<Manifest | undefined> {
    const parsed = parseBackupId(id);
    if (!parsed) return undefined;
    const key = manifestKey(parsed.database, id);
    const body = await this.storage.get(key);
    return body ? parseManifest(body.toString('utf8'), this.storage.describe(key)) : undefined;
  }

  async get(id: string): Promise<Manifest> {
    const manifest = await this.find(id);
    if (!manifest) {
      throw new LifelineError('BackupNotFound', `no verified backup with id ${id} in ${this.storage.location}`, {
        hint: 'run `lifeline list` to see the backups there are',
      });
    }
    return manifest;
  }

  async latest(database: string): Promise<Manifest | undefined> {
    return (await this.list(database)).at(-1);
  }

  /** Publishes a manifest; true if written, false if this exact backup was already catalogued. */
  async add(manifest: Manifest): Promise<boolean> {
    const key = manifestKey(manifest.database, manifest.id);
    const written = await this.storage.putIfAbsent(key, Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
    if (written) return true;
    const existing = await this.get(manifest.id);
    if (existing.sha256 !== manifest.sha256) {
      throw new LifelineError('ObjectExists', `backup ${manifest.id} is already catalogued with different content`, {
        hint: 'two backups of one database started in the same second; run the backup again',
      });
    }
    return false;
  }
}

/** Deletes every object named after a backup id (`<db>/<id>.*`: data, key envelope, hold, pending record); returns where they were. */
export async function removeBackupObjects(storage: BackupStorage, database: string, id: string): Promise<string[]> {
  const removed: string[] = [];
  for (const object of await storage.list(`${database}/${id}.`)) {
    await storage.delete(object.key);
    removed.push(storage.describe(object.key));
  }
  return removed;
}
