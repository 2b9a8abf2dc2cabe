/**
 * Key rotation on a parts-format backup: re-wrapping checks the data key against the data object's
 * header (key commitment), and the data object of a parts backup is its archive part, encrypted under
 * partKey(dataKey, id, 'archive'). The backup must re-wrap, open under the new master key, and still
 * be refused when its archive part is another backup's.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { catalogBackup } from '../../src/backup/catalog-backup';
import { dumpToRepository } from '../../src/backup/dump';
import { dataKeyFor } from '../../src/backup/read-backup';
import { localStorageFor } from '../../src/backup/repository';
import { Catalog } from '../../src/catalog/catalog';
import { currentWrapping } from '../../src/catalog/key-envelope';
import type { Manifest } from '../../src/catalog/manifest';
import { backupId } from '../../src/catalog/naming';
import type { DatabaseConfig } from '../../src/config/config';
import { keyProviderFor, keyringFor } from '../../src/crypto/keys';
import { isParts } from '../../src/parts/parts-of';
import { rewrapBackup } from '../../src/rotation/rewrap';
import { nextSecond, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers } from '../harness/servers';

describe('key rotation re-wraps a parts-format backup, checking its archive part', () => {
  let setup: TestSetup;
  let db: DatabaseConfig;
  const backups: Manifest[] = [];

  before(async () => {
    const servers = await testServers();
    const source = await seededDatabase(servers, 'rw_parts');
    setup = await testConfig(servers, 'rewrap-parts', [{ name: 'rw_parts', url: source.url }], { env: { BACKUP_FORMAT: 'parts' } });
    db = setup.config.databases[0]!;
    for (let i = 0; i < 2; i++) {
      if (i) await nextSecond();
      const record = await dumpToRepository(setup.config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
      const verification = { verifiedAt: new Date().toISOString(), method: 'test', storedSha256: record.sha256, rawSha256: record.rawSha256, tocEntries: 0, tableDataEntries: 0, durationMs: 0 };
      backups.push(await catalogBackup(db, record, verification, 'test', keyringFor(setup.config)));
    }
    assert.ok(backups.every(isParts));
  });

  it('re-wraps under the new master key, and the backup opens with it', async () => {
    const [backup] = backups;
    const rotated = await keyProviderFor(setup.config).rotate('rotation-test');
    const target = { database: db.name, storage: 'local' };
    assert.equal(await rewrapBackup(setup.config, target, backup!.id, rotated.keyId, 'rotation-test'), 'rewrapped');
    const storage = localStorageFor(db);
    const manifest = await new Catalog(storage).get(backup!.id);
    assert.equal((await currentWrapping(storage, manifest)).keyId, rotated.keyId);
    assert.equal((await dataKeyFor(storage, manifest, keyringFor(setup.config))).length, 32);
    assert.equal(await rewrapBackup(setup.config, target, backup!.id, rotated.keyId, 'rotation-test'), 'already-current');
  });

  it("refuses a backup whose archive part is another backup's (key commitment), writing nothing", async () => {
    const [, second] = backups;
    const storage = localStorageFor(db);
    const file = storage.describe(second!.object.key);
    const own = readFileSync(file);
    try {
      copyFileSync(storage.describe(backups[0]!.object.key), file);
      const current = await keyringFor(setup.config).current.currentKeyId();
      await assert.rejects(rewrapBackup(setup.config, { database: db.name, storage: 'local' }, second!.id, current, 'rotation-test'), /key commitment differs/);
      assert.notEqual((await currentWrapping(storage, second!)).keyId, current, 'still wrapped under the old key');
    } finally {
      writeFileSync(file, own);
    }
    assert.equal(await rewrapBackup(setup.config, { database: db.name, storage: 'local' }, second!.id, await keyringFor(setup.config).current.currentKeyId(), 'rotation-test'), 'rewrapped');
  });
});
