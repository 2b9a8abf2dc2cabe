import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ManifestSchema } from '../../src/catalog/manifest';
import { keyIdProblem } from '../../src/crypto/keys/key-ids';
import { createKeyFile, LocalKeyFileProvider } from '../../src/crypto/keys/local-key-file';
import { LifelineError } from '../../src/errors';

const ARN = 'arn:aws:kms:eu-west-1:111122223333:key/7d1b2f4e-5a6c-4e8f-9b0a-1c2d3e4f5a6b';

describe('key ids from repository files', () => {
  it('accepts plain ids only', () => {
    assert.equal(keyIdProblem('local', 'local:0123456789abcdef'), undefined);
    assert.equal(keyIdProblem('kms', ARN), undefined);
    assert.equal(keyIdProblem('kms', 'arn:aws:kms:eu-west-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef'), undefined);
    for (const bad of ['local:../../../etc/x', 'local:0123456789ABCDEF', 'local:0123456789abcdef/..', 'local:0123456789abcdef\n', 'x', ARN]) {
      assert.match(keyIdProblem('local', bad) ?? '', /is not a local key id: expected "local:" and 16 hex digits/, bad);
    }
    for (const bad of ['alias/lifeline', '7d1b2f4e-5a6c-4e8f-9b0a-1c2d3e4f5a6b', `${ARN}/..`, 'arn:aws:kms:eu-west-1:111122223333:alias/x', 'local:0123456789abcdef']) {
      assert.match(keyIdProblem('kms', bad) ?? '', /is not a kms key id: expected a KMS key ARN/, bad);
    }
  });

  it('the local provider refuses an id that would leave the keyring folder, before reading any file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeline-keyid-'));
    const file = path.join(dir, 'keys', 'master.key');
    await createKeyFile(file);
    // Where `keyring/local-../../../etc/x.key` leads: a file the old code read (and named, being 0644).
    const planted = path.join(dir, 'keys', 'etc', 'x.key');
    mkdirSync(path.dirname(planted), { recursive: true });
    writeFileSync(planted, readFileSync(file), { mode: 0o644 });
    const provider = new LocalKeyFileProvider(file);
    const wrapped = await provider.wrapDataKey(Buffer.alloc(32, 1), { database: 'db', backupId: 'db_backup_20261126_030000' });
    await assert.rejects(provider.unwrapDataKey({ ...wrapped, keyId: 'local:../../../etc/x' }, { database: 'db', backupId: 'db_backup_20261126_030000' }), (err: LifelineError) => {
      assert.equal(err.code, 'KeyIdInvalid');
      assert.match(err.message, /refusing key id "local:\.\.\/\.\.\/\.\.\/etc\/x" is not a local key id/);
      assert.ok(!err.message.includes(planted));
      return true;
    });
  });

  it('the manifest schema refuses such ids too (defense in depth)', () => {
    const encryption = { format: 'lifeline-aes-256-gcm-stream-v1', chunkBytes: 1024, wrappedKey: 'x' };
    const shape = (keyProvider: string, keyId: string) => ManifestSchema.shape.encryption.safeParse({ ...encryption, keyProvider, keyId });
    assert.ok(shape('local', 'local:0123456789abcdef').success);
    assert.ok(shape('kms', ARN).success);
    const bad = shape('local', 'local:../../../etc/x');
    assert.ok(!bad.success);
    assert.match(bad.error!.issues[0]!.message, /not a local key id/);
    assert.ok(!shape('kms', 'alias/attacker').success);
  });
});
