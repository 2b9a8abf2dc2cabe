import { copyFileSync, writeFileSync } from 'node:fs';
import { localStorageFor } from '../../src/backup/repository';
import { sealManifest } from '../../src/catalog/authenticate';
import { currentWrapping } from '../../src/catalog/key-envelope';
import type { Manifest } from '../../src/catalog/manifest';
import { backupId, dataKey, manifestKey } from '../../src/catalog/naming';
import type { DatabaseConfig, LifelineConfig } from '../../src/config/config';
import { keyringFor } from '../../src/crypto/keys';
import { FILE_EXTENSION } from '../../src/pipeline/compression';

/**
 * A copy of a real backup catalogued under its own id and time, as Lifeline would have written it:
 * the data key re-wrapped for the new id and the manifest sealed with it. Builds synthetic histories
 * (retention, reports) that pass authentication, which a hand-edited manifest does not.
 */
export async function catalogCopy(config: LifelineConfig, db: DatabaseConfig, manifest: Manifest, at: Date): Promise<Manifest> {
  const storage = localStorageFor(db);
  const keys = keyringFor(config);
  const id = backupId(db.name, at);
  const key = dataKey(db.name, id, FILE_EXTENSION[manifest.compression.algorithm]);
  copyFileSync(storage.describe(manifest.object.key), storage.describe(key));
  const plaintext = await keys.unwrap(await currentWrapping(storage, manifest), { database: db.name, backupId: manifest.id });
  const wrapped = await keys.current.wrapDataKey(plaintext, { database: db.name, backupId: id });
  const copy = await sealManifest(
    storage,
    {
      ...manifest,
      id,
      startedAt: at.toISOString(),
      finishedAt: at.toISOString(),
      object: { storage: 'local', key },
      encryption: { ...manifest.encryption, keyProvider: wrapped.provider, keyId: wrapped.keyId, wrappedKey: wrapped.wrappedKey },
    },
    keys,
  );
  writeFileSync(storage.describe(manifestKey(db.name, id)), JSON.stringify(copy));
  return copy;
}
