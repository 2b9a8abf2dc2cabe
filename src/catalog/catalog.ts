import { IntegrityError, LifelineError } from '../errors';
import type { BackupStorage } from '../storage/storage';
import { authenticateManifest, isDistrust, type ManifestKeys } from './authenticate';
import { namingProblem, parseManifest, type Manifest } from './manifest';
import { MANIFEST_SUFFIX, manifestKey, parseBackupId } from './naming';

/** A manifest Lifeline does not trust (no MAC, altered, or another backup's), and why. */
export interface UntrustedManifest {
  manifest: Manifest;
  error: LifelineError;
}

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
      if (body) manifests.push(this.parse(object.key, body));
    }
    return manifests.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
  }

  async find(id: string): Promise<Manifest | undefined> {
    const parsed = parseBackupId(id);
    if (!parsed) return undefined;
    const key = manifestKey(parsed.database, id);
    const body = await this.storage.get(key);
    return body ? this.parse(key, body) : undefined;
  }

  /** A manifest file, refused unless it is at `<db>/<id>.manifest.json` of the database and id it names. */
  private parse(key: string, body: Buffer): Manifest {
    const where = this.storage.describe(key);
    const manifest = parseManifest(body.toString('utf8'), where);
    const problem = key === manifestKey(manifest.database, manifest.id) ? namingProblem(manifest, { inRepository: true }) : `it says backup ${manifest.id} of ${manifest.database}`;
    if (problem) {
      throw new IntegrityError(`manifest ${where} is not this backup's: ${problem}`, 'a manifest or data file was copied under another backup\'s name: move it aside and restore another backup');
    }
    return manifest;
  }

  /**
   * The manifests Lifeline trusts (MAC checked under each backup's data key), oldest first, and
   * those it does not. Anything that decides by a manifest (newest backup, age, row counts) reads
   * `trusted`; a key service that is down fails the whole call instead.
   */
  async authenticated(database: string, keys: ManifestKeys): Promise<{ trusted: Manifest[]; untrusted: UntrustedManifest[] }> {
    const trusted: Manifest[] = [];
    const untrusted: UntrustedManifest[] = [];
    for (const manifest of await this.list(database)) {
      try {
        await authenticateManifest(this.storage, manifest, keys);
        trusted.push(manifest);
      } catch (err) {
        if (!isDistrust(err)) throw err;
        untrusted.push({ manifest, error: err });
      }
    }
    return { trusted, untrusted };
  }

  /** The newest authentic manifest that `accept`s (see newestAuthentic). */
  async newestAuthentic(database: string, keys: ManifestKeys, accept: (m: Manifest) => boolean = () => true): Promise<Manifest | undefined> {
    return newestAuthentic(this.storage, (await this.list(database)).filter(accept), keys);
  }

  /** One backup's manifest, authenticated. */
  async getAuthenticated(id: string, keys: ManifestKeys): Promise<Manifest> {
    const manifest = await this.get(id);
    await authenticateManifest(this.storage, manifest, keys);
    return manifest;
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

/**
 * The newest authentic one of these manifests (oldest first, as `list` gives them): a forged
 * "newest" is skipped, so it can neither hide that the real newest is old nor stand in for it.
 */
export async function newestAuthentic(storage: BackupStorage, manifests: Manifest[], keys: ManifestKeys): Promise<Manifest | undefined> {
  for (const manifest of [...manifests].reverse()) {
    try {
      await authenticateManifest(storage, manifest, keys);
      return manifest;
    } catch (err) {
      if (!isDistrust(err)) throw err;
    }
  }
  return undefined;
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
