/**
 * Issue 10, item 8: files that can lie. A manifest is authenticated (MAC under a key derived from the
 * backup's own data key) wherever it is trusted; its names must agree with the file it is in; key ids
 * in repository files are plain ids (a local id never leaves the keyring folder, a KMS key must be on
 * the allow-list).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import { catalogBackup } from '../../src/backup/catalog-backup';
import { dumpToRepository } from '../../src/backup/dump';
import { localStorageFor, storageNamed } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { Catalog } from '../../src/catalog/catalog';
import type { Manifest } from '../../src/catalog/manifest';
import { backupId } from '../../src/catalog/naming';
import type { DatabaseConfig, LifelineConfig } from '../../src/config/config';
import { loadConfig } from '../../src/config/load';
import { keyringFor } from '../../src/crypto/keys';
import { LifelineError } from '../../src/errors';
import { replicateBackup } from '../../src/replication/replicate';
import { rpoCheck } from '../../src/alerts/conditions';
import { planTarget } from '../../src/retention/apply';
import { prepareRestore } from '../../src/restore/plan';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { newWorkDir, SEEDED_KMS_KEY, testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const HOUR = 3_600_000;

/** A backup as the backup workflow makes one (dump, read back, catalogue), without Temporal. */
async function takeBackup(config: LifelineConfig, db: DatabaseConfig, at: Date): Promise<Manifest> {
  const record = await dumpToRepository(config, db, { backupId: backupId(db.name, at), type: 'full' });
  const { verification } = await verifyBackup(localStorageFor(db), record, keyringFor(config));
  return catalogBackup(db, record, verification, 'test', keyringFor(config));
}

/** `lifeline …` as an operator runs it: exit code and output, never a throw. */
async function lifeline(setup: TestSetup, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], {
      cwd: root,
      env: { ...process.env, ...setup.env, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('manifests are authenticated; key ids stay plain', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let db: DatabaseConfig;
  let older: Manifest;
  let newer: Manifest;
  const file = (m: Pick<Manifest, 'id'>, suffix = '.manifest.json') => localStorageFor(db).describe(`ma_source/${m.id}${suffix}`);
  const dataFile = (m: Manifest) => localStorageFor(db).describe(m.object.key);
  /** Rewrites a manifest file in place; returns a function that puts the original back. */
  const tamper = (m: Manifest, change: (json: Manifest) => void): (() => void) => {
    const original = readFileSync(file(m));
    const json = JSON.parse(original.toString('utf8')) as Manifest;
    change(json);
    writeFileSync(file(m), JSON.stringify(json, null, 2));
    return () => writeFileSync(file(m), original);
  };
  const refusesNaming = (where: string) => (err: unknown) => {
    assert.ok(err instanceof LifelineError, String(err));
    assert.equal(err.code, 'IntegrityError', err.message);
    assert.ok(err.message.includes(where), `${err.message} should name ${where}`);
    return true;
  };

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'ma_source', { users: 10, transactions: 100 });
    setup = await testConfig(servers, 'manifest-auth', [{ name: 'ma_source', url: source.url, retention: { minVerified: 1 } }], {
      destinations: [{ name: 'copy', type: 'local', path: path.join(newWorkDir('manifest-auth-copy'), 'copy') }],
    });
    db = setup.config.databases[0]!;
    // Single-stream, as every backup was when manifests had no MAC (the legacy case below makes it one of those).
    older = await takeBackup({ ...setup.config, backup: { ...setup.config.backup, format: 'stream' } }, db, new Date(Date.now() - 2 * HOUR));
    newer = await takeBackup(setup.config, db, new Date(Date.now() - HOUR));
  });

  it('an older manifest edited to look newest: restore --latest and verify --all refuse it, naming it', async () => {
    const restore = tamper(older, (m) => void (m.startedAt = new Date(Date.parse(newer.startedAt) + 1000).toISOString()));
    try {
      await assert.rejects(prepareRestore(setup.config, { database: 'ma_source', backup: 'latest', requestedBy: 'test' }), refusesNaming(file(older)));
      await assert.rejects(prepareRestore(setup.config, { database: 'ma_source', at: new Date(Date.now() + HOUR).toISOString(), requestedBy: 'test' }), refusesNaming(file(older)));
      const verify = await lifeline(setup, ['verify', '--all']);
      assert.equal(verify.code, 1, verify.out);
      assert.match(verify.out, new RegExp(`FAIL +${older.id} .*${file(older).replace(/[.]/g, '\\.')} fails authentication`));
      assert.match(verify.out, new RegExp(`OK +${newer.id}`));
    } finally {
      restore();
    }
    // Put back, the genuine newest is chosen again.
    assert.equal((await prepareRestore(setup.config, { database: 'ma_source', backup: 'latest', requestedBy: 'test' })).manifest.id, newer.id);
  });

  it('a row count edited in a manifest is refused', async () => {
    const restore = tamper(newer, (m) => void (m.tables.find((t) => t.kind === 'table')!.rows += 1));
    try {
      await assert.rejects(prepareRestore(setup.config, { database: 'ma_source', backup: newer.id, requestedBy: 'test' }), refusesNaming(file(newer)));
      const verify = await lifeline(setup, ['verify', newer.id]);
      assert.equal(verify.code, 1, verify.out);
      assert.match(verify.out, /fails authentication/);
    } finally {
      restore();
    }
  });

  it('a manifest written before manifests were authenticated (no MAC) is not trusted, and says what to do', async () => {
    const restore = tamper(older, (m) => {
      delete m.mac;
      (m as { manifestVersion: number }).manifestVersion = 1;
    });
    try {
      await assert.rejects(verifyBackup(localStorageFor(db), (await new Catalog(localStorageFor(db)).get(older.id))!, keyringFor(setup.config)), (err: LifelineError) => {
        assert.equal(err.code, 'IntegrityError');
        assert.match(err.message, new RegExp(`manifest ${file(older).replace(/[.]/g, '\\.')} has no MAC`));
        assert.match(err.hint ?? '', /lifeline backup/);
        return true;
      });
      // By hand it can still be read: `lifeline decrypt` warns that its manifest is not trusted.
      const out = path.join(newWorkDir('manifest-auth-legacy'), 'legacy.dump');
      const decrypted = await lifeline(setup, ['decrypt', dataFile(older), '-o', out]);
      assert.equal(decrypted.code, 0, decrypted.out);
      assert.match(decrypted.out, /warning: .* has no MAC .*not trusted/);
      assert.ok(existsSync(out));
      // `list` still shows it, marked: an operator sees what restores and retention leave out.
      const list = await lifeline(setup, ['list']);
      assert.equal(list.code, 0, list.out);
      assert.match(list.out, new RegExp(`${older.id} .* no MAC\n`));
      assert.match(list.out, new RegExp(`${newer.id} .* authentic\n`));
      assert.match(list.out, new RegExp(`not proven authentic; restores, drills and retention do not use them:\n  ${older.id}: written before manifests were authenticated`));
    } finally {
      restore();
    }
  });

  it("one backup's manifest and data file copied under another backup's name are refused", async () => {
    const saved = { manifest: readFileSync(file(newer)), data: readFileSync(dataFile(newer)) };
    try {
      // The whole older backup under the newer one's name: `--backup <newer>` must not restore the older.
      copyFileSync(file(older), file(newer));
      copyFileSync(dataFile(older), dataFile(newer));
      await assert.rejects(prepareRestore(setup.config, { database: 'ma_source', backup: newer.id, requestedBy: 'test' }), refusesNaming(file(newer)));
      await assert.rejects(prepareRestore(setup.config, { database: 'ma_source', backup: 'latest', requestedBy: 'test' }), refusesNaming(file(newer)));
      // The older manifest renamed to say the newer id and object: the MAC (and the key's context) bind the id.
      writeFileSync(file(newer), JSON.stringify({ ...JSON.parse(readFileSync(file(older), 'utf8')), id: newer.id, object: newer.object }));
      await assert.rejects(prepareRestore(setup.config, { database: 'ma_source', backup: newer.id, requestedBy: 'test' }), (err: LifelineError) => {
        assert.ok(['IntegrityError', 'WrongKey'].includes(err.code), `${err.code}: ${err.message}`);
        return true;
      });
      // Only the data file copied over: the newer backup's own key does not open it.
      writeFileSync(file(newer), saved.manifest);
      await assert.rejects(verifyBackup(localStorageFor(db), newer, keyringFor(setup.config)), (err: LifelineError) => {
        assert.ok(['IntegrityError', 'WrongKey'].includes(err.code), `${err.code}: ${err.message}`);
        return true;
      });
    } finally {
      writeFileSync(file(newer), saved.manifest);
      writeFileSync(dataFile(newer), saved.data);
    }
    await verifyBackup(localStorageFor(db), newer, keyringFor(setup.config));
  });

  it('a manifest whose key id leaves the keyring folder is refused before any key file is read', async () => {
    // What the old code read: <keys>/keyring/local-../../../etc/x.key is <keys>/etc/x.key (planted, mode 0644).
    const planted = path.join(path.dirname(setup.config.encryption.keyFile), 'etc', 'x.key');
    mkdirSync(path.dirname(planted), { recursive: true });
    writeFileSync(planted, readFileSync(setup.config.encryption.keyFile), { mode: 0o644 });
    const restore = tamper(newer, (m) => void (m.encryption.keyId = 'local:../../../etc/x'));
    try {
      const verify = await lifeline(setup, ['verify', newer.id]);
      assert.notEqual(verify.code, 0, verify.out);
      assert.match(verify.out, new RegExp(`${file(newer).replace(/[.]/g, '\\.')} is malformed: encryption\\.keyId: "local:\\.\\./\\.\\./\\.\\./etc/x" is not a local key id`));
      assert.doesNotMatch(verify.out, new RegExp(planted.replace(/[.]/g, '\\.')));
      // The key envelope is a repository file too.
      writeFileSync(file(newer, '.key.json'), JSON.stringify({
        envelopeVersion: 1, database: 'ma_source', backupId: newer.id, provider: 'local', keyId: 'local:../../../etc/x',
        wrappedKey: newer.encryption.wrappedKey, rewrappedAt: new Date().toISOString(), previousKeyIds: [],
      }));
      restore();
      await assert.rejects(verifyBackup(localStorageFor(db), newer, keyringFor(setup.config)), (err: LifelineError) => {
        assert.equal(err.code, 'IntegrityError');
        assert.match(err.message, /key envelope .*\.key\.json is malformed: keyId: "local:\.\.\/\.\.\/\.\.\/etc\/x" is not a local key id/);
        return true;
      });
    } finally {
      restore();
      rmSync(file(newer, '.key.json'), { force: true });
    }
  });

  it('retention: a forged newest manifest neither counts as the newest nor gets the real newest deleted', async () => {
    const restore = tamper(older, (m) => void (m.startedAt = new Date(Date.parse(newer.startedAt) + 1000).toISOString()));
    try {
      // Everything older than 0 days goes unless a rule keeps it: only "newest" and "minimum 1" do.
      const { plan, untrusted } = await planTarget(setup.config, { database: 'ma_source', storage: 'local' }, { inUse: [], olderThanDays: 0 });
      assert.deepEqual(plan.keep.map((k) => k.id), [newer.id]);
      assert.ok(!plan.delete.some((d) => d.id === newer.id), 'the real newest backup is never planned for deletion');
      assert.ok(!plan.delete.some((d) => d.id === older.id), 'an unauthenticated manifest is left for a person to look at');
      assert.deepEqual(untrusted.map((u) => u.id), [older.id]);
      assert.match(untrusted[0]!.error, /fails authentication/);
    } finally {
      restore();
    }
    assert.ok(existsSync(dataFile(newer)));
  });

  it('the RPO alert is not silenced by a forged newest manifest', async () => {
    // 30 h from now the real newest is past the RPO (24 h + 2 h grace); the forgery claims to be fresh then.
    const later = new Date(Date.now() + 30 * HOUR);
    const restore = tamper(older, (m) => void (m.startedAt = new Date(later.getTime() - 60_000).toISOString()));
    try {
      const { check, notice } = await rpoCheck(setup.config, db, later);
      assert.equal(check.breached, true);
      assert.equal(check.newestVerifiedAt, newer.startedAt);
      assert.equal(notice.event, 'rpo.breached');
    } finally {
      restore();
    }
  });

  it("a destination's copy stays authentic: where it came from is outside the MAC, what it is is inside", async () => {
    const copy = (await replicateBackup(setup.config, db, newer.id, 'copy')).location;
    const copyManifest = copy.replace(/\.dump\.zst\.enc$/, '.manifest.json');
    const destination = new Catalog(storageNamed(setup.config, db, 'copy'));
    const keys = keyringFor(setup.config);
    const replica = await destination.getAuthenticated(newer.id, keys);
    assert.equal(replica.replica?.from, 'local');
    const json = JSON.parse(readFileSync(copyManifest, 'utf8')) as Manifest;
    writeFileSync(copyManifest, JSON.stringify({ ...json, startedAt: new Date().toISOString() }));
    await assert.rejects(destination.getAuthenticated(newer.id, keys), refusesNaming(copyManifest));
  });
});

describe('key ids in repository files', () => {
  let servers: TestServers;
  let config: LifelineConfig;
  let setup: TestSetup;

  before(async () => {
    servers = await testServers();
    process.env.AWS_ACCESS_KEY_ID ??= 'lifeline-test';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'lifeline-test';
    setup = await testConfig(servers, 'manifest-kms', [{ name: 'mk_source', url: servers.cluster.adminUrl('postgres') }], {
      env: { BACKUP_KMS_ENDPOINT: servers.kms.endpoint, BACKUP_KMS_REGION: servers.kms.region, BACKUP_KMS_KEY_ID: SEEDED_KMS_KEY.alias },
    });
    config = setup.config;
  });

  it('a KMS key outside the allow-list is refused, naming it and what is allowed, before KMS is asked', async () => {
    const keys = keyringFor(config);
    const seededArn = await keys.provider('kms').currentKeyId();
    const [, region, account] = /^arn:aws:kms:([^:]+):(\d{12}):/.exec(seededArn)!;
    const foreign = `arn:aws:kms:${region}:999999999999:key/${SEEDED_KMS_KEY.keyId}`;
    const context = { database: 'mk_source', backupId: backupId('mk_source', new Date()) };
    const wrapped = await keys.provider('kms').wrapDataKey(Buffer.alloc(32, 7), context);
    await assert.rejects(keys.unwrap({ ...wrapped, keyId: foreign }, context), (err: LifelineError) => {
      assert.equal(err.code, 'KeyNotAllowed', err.message);
      assert.ok(err.message.includes(foreign));
      assert.ok(err.message.includes(`account ${account}, region ${region}`), err.message);
      assert.match(err.message, /BACKUP_KMS_ALLOWED_KEYS is empty/);
      return true;
    });
    // The key of the configured key's account and region opens as before.
    assert.deepEqual(await keys.unwrap(wrapped, context), Buffer.alloc(32, 7));
    // Listed, the foreign key is asked (and local-kms does not know it).
    const listed = keyringFor({ ...config, encryption: { ...config.encryption, kms: { ...config.encryption.kms, allowedKeyIds: [foreign] } } });
    await assert.rejects(listed.unwrap({ ...wrapped, keyId: foreign }, context), (err: LifelineError) => err.code !== 'KeyNotAllowed');
    const wholeAccount = keyringFor({ ...config, encryption: { ...config.encryption, kms: { ...config.encryption.kms, allowedKeyIds: [foreign.replace(/key\/.*$/, 'key/*')] } } });
    await assert.rejects(wholeAccount.unwrap({ ...wrapped, keyId: foreign }, context), (err: LifelineError) => err.code !== 'KeyNotAllowed');
    // With no KMS key configured for new backups, only the list counts: even the seeded key's account is refused.
    const openOnly = keyringFor({ ...config, encryption: { ...config.encryption, kms: { ...config.encryption.kms, keyId: undefined } } });
    await assert.rejects(openOnly.unwrap(wrapped, context), /refusing KMS key .*no account by default \(BACKUP_KMS_KEY_ID is not set\); BACKUP_KMS_ALLOWED_KEYS is empty/);
  });

  it('BACKUP_KMS_ALLOWED_KEYS holds key ARNs only', () => {
    assert.throws(
      () => loadConfig({ cwd: setup.dir, env: { ...setup.env, BACKUP_KMS_ALLOWED_KEYS: 'alias/other' } }),
      /BACKUP_KMS_ALLOWED_KEYS.*KMS key ARNs/,
    );
  });
});
