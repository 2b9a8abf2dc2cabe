import { authenticateManifest, isDistrust, type ManifestKeys } from '../catalog/authenticate';
import { Catalog } from '../catalog/catalog';
import type { Manifest } from '../catalog/manifest';
import { MANIFEST_SUFFIX } from '../catalog/naming';
import type { BackupStorage, StoredObject } from '../storage/storage';

/** One manifest of a listing, and what identifies this version of its object. */
export interface Listed {
  manifest: Manifest;
  stamp: string;
}

/**
 * The catalogs as the metrics see them, read at every scrape but cheaply: a manifest object is read and
 * parsed once per version (its key, size and modification time), and authenticated (MAC under its
 * backup's data key, through the key provider: KMS is asked once per new backup, not per scrape) once per
 * version too. A manifest that does not parse is left out, like one that fails authentication: the
 * freshness gauges count only backups Lifeline trusts, as the RPO watchdog does.
 */
export class CatalogView {
  private readonly parsed = new Map<string, Manifest | null>();
  private readonly trusted = new Map<string, boolean>();

  constructor(private readonly keys: ManifestKeys) {}

  /** Every manifest of `database` in `storage`, oldest first (by the time its backup started). */
  async list(storage: BackupStorage, database: string): Promise<Listed[]> {
    const objects = (await storage.list(`${database}/`)).filter((o) => o.key.endsWith(MANIFEST_SUFFIX) && !o.key.slice(database.length + 1).includes('/'));
    const catalog = new Catalog(storage);
    const listed: Listed[] = [];
    const seen = new Set<string>();
    for (const object of objects) {
      const stamp = stampOf(storage, object);
      seen.add(stamp);
      let manifest = this.parsed.get(stamp);
      if (manifest === undefined) {
        const id = object.key.slice(database.length + 1, -MANIFEST_SUFFIX.length);
        manifest = await catalog.find(id).then(
          (m) => m ?? null,
          (err: unknown) => {
            if (isDistrust(err)) return null;
            throw err;
          },
        );
        this.parsed.set(stamp, manifest);
      }
      if (manifest) listed.push({ manifest, stamp });
    }
    // Forget what is gone (retention deleted it), so the caches stay as large as the catalogs.
    const prefix = `${storage.location}\u0000${database}/`;
    for (const cache of [this.parsed, this.trusted]) for (const stamp of cache.keys()) if (stamp.startsWith(prefix) && !seen.has(stamp)) cache.delete(stamp);
    return listed.sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt) || a.manifest.id.localeCompare(b.manifest.id));
  }

  /** The newest of `listed` (oldest first) that passes `accept` and authenticates; a key service that is down throws. */
  async newestTrusted(storage: BackupStorage, listed: Listed[], accept: (m: Manifest) => boolean = () => true): Promise<Manifest | undefined> {
    for (const { manifest, stamp } of [...listed].reverse()) {
      if (!accept(manifest)) continue;
      let ok = this.trusted.get(stamp);
      if (ok === undefined) {
        ok = await authenticateManifest(storage, manifest, this.keys).then(
          () => true,
          (err: unknown) => {
            if (isDistrust(err)) return false;
            throw err;
          },
        );
        this.trusted.set(stamp, ok);
      }
      if (ok) return manifest;
    }
    return undefined;
  }
}

function stampOf(storage: BackupStorage, object: StoredObject): string {
  return `${storage.location}\u0000${object.key}\u0000${object.size}\u0000${object.modified.getTime()}`;
}
