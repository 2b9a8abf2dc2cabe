import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createKeyFile, LocalKeyFileProvider } from '../../src/crypto/keys/local-key-file';
import { LifelineError, WrongKeyError } from '../../src/errors';

const dir = () => mkdtempSync(path.join(tmpdir(), 'lifeline-key-'));
const ctx = { database: 'moneyflow', backupId: 'moneyflow_backup_20261126_030000' };

describe('local key file provider', () => {
  it('creates a 0600 key file once and refuses to overwrite it', async () => {
    const file = path.join(dir(), 'keys', 'master.key');
    const id = await createKeyFile(file);
    assert.match(id, /^local:[0-9a-f]{16}$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const before = readFileSync(file, 'utf8');
    await assert.rejects(createKeyFile(file), /already exists; refusing to overwrite/);
    assert.equal(readFileSync(file, 'utf8'), before);
  });

  it('wraps a fresh data key per backup and unwraps it for the same backup only', async () => {
    const file = path.join(dir(), 'k');
    await createKeyFile(file);
    const provider = new LocalKeyFileProvider(file);
    const a = await provider.generateDataKey(ctx);
    const b = await provider.generateDataKey(ctx);
    assert.equal(a.plaintext.length, 32);
    assert.notDeepEqual(a.plaintext, b.plaintext);
    assert.deepEqual(await provider.unwrapDataKey(a, ctx), a.plaintext);
    await assert.rejects(provider.unwrapDataKey(a, { ...ctx, backupId: 'moneyflow_backup_20261127_030000' }), WrongKeyError);
  });

  it('names both key ids when the backup was written under another key', async () => {
    const d = dir();
    await createKeyFile(path.join(d, 'one'));
    await createKeyFile(path.join(d, 'two'));
    const wrapped = await new LocalKeyFileProvider(path.join(d, 'one')).generateDataKey(ctx);
    await assert.rejects(new LocalKeyFileProvider(path.join(d, 'two')).unwrapDataKey(wrapped, ctx), (err: Error) => {
      assert.ok(err instanceof WrongKeyError);
      assert.ok(err.message.includes(wrapped.keyId), err.message);
      return true;
    });
  });

  it('refuses a key file other users can read, and a file that holds no key', async () => {
    const file = path.join(dir(), 'k');
    await createKeyFile(file);
    chmodSync(file, 0o644);
    await assert.rejects(new LocalKeyFileProvider(file).currentKeyId(), (err: Error) => err instanceof LifelineError && /chmod 600/.test(err.describe()));
    const hint = (pattern: RegExp) => (err: Error) => err instanceof LifelineError && pattern.test(err.describe());
    await assert.rejects(new LocalKeyFileProvider(path.join(dir(), 'missing')).currentKeyId(), hint(/cannot read key file.*\n.*lifeline keys init/));
    const garbage = path.join(dir(), 'garbage');
    writeFileSync(garbage, 'not a key\n', { mode: 0o600 });
    await assert.rejects(new LocalKeyFileProvider(garbage).currentKeyId(), hint(/does not hold a 256-bit key/));
  });
});
