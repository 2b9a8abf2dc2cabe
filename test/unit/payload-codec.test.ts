import { ApplicationFailure, defaultPayloadConverter, type Payload } from '@temporalio/common';
import { decodeOptionalFailureToOptionalError, encodeErrorToFailure, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { LifelineConfig } from '../../src/config/config';
import { codecKeysFor, CodecKeyStore, fixedCodecKeys, forgetCodecKeys } from '../../src/crypto/codec-keys';
import { createKeyFile, LocalKeyFileProvider } from '../../src/crypto/keys/local-key-file';
import { LifelineError } from '../../src/errors';
import { ENCRYPTED_ENCODING, KEY_ID_METADATA, LifelineCodec } from '../../src/temporal/codec';
import { dataConverterFor } from '../../src/temporal/data-converter';

const SECRET_LOOKING = { database: 'moneyflow', tables: [{ name: 'public.transactions', rows: 123457 }], path: '/srv/backups/moneyflow' };
const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? []).toString('utf8');

async function installation(): Promise<{ config: LifelineConfig; keyFile: string; backupDir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lifeline-codec-'));
  const keyFile = path.join(dir, 'keys', 'master.key');
  await createKeyFile(keyFile);
  const backupDir = path.join(dir, 'backups');
  const config = { backupDir, encryption: { keyFile, cipher: 'aes-256-gcm', kms: { region: 'us-east-1' } } } as unknown as LifelineConfig;
  return { config, keyFile, backupDir };
}

const codecOf = (config: LifelineConfig) => new LifelineCodec(codecKeysFor(config));
const plain = (): Payload => defaultPayloadConverter.toPayload(SECRET_LOOKING)!;

describe('the payload codec (AES-256-GCM, key id in the metadata)', () => {
  it('encrypts the whole payload and decrypts it back; the plaintext is nowhere in what Temporal gets', async () => {
    forgetCodecKeys();
    const { config, backupDir } = await installation();
    const codec = codecOf(config);
    const [encoded] = await codec.encode([plain()]);
    assert.equal(text(encoded!.metadata!.encoding), ENCRYPTED_ENCODING);
    const keyId = text(encoded!.metadata![KEY_ID_METADATA]);
    assert.match(keyId, /^[0-9a-f]{16}$/);
    const wire = Buffer.concat([Buffer.from(JSON.stringify(encoded!.metadata)), Buffer.from(encoded!.data!)]);
    for (const word of ['public.transactions', '123457', '/srv/backups', 'json/plain']) assert.equal(wire.indexOf(word), -1, word);
    // The key is kept only wrapped, one file per key, named by the id the payload carries.
    const files = readdirSync(path.join(backupDir, 'codec'));
    assert.deepEqual(files, ['key-0001.json']);
    const record = JSON.parse(readFileSync(path.join(backupDir, 'codec', 'key-0001.json'), 'utf8'));
    assert.equal(record.codecKeyId, keyId);
    assert.equal(record.provider, 'local');
    // A new process (no cached key) decrypts it with the key provider.
    forgetCodecKeys();
    const [decoded] = await codecOf(config).decode([encoded!]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(decoded!), SECRET_LOOKING);
    // Two payloads never share an IV.
    const [again] = await codec.encode([plain()]);
    assert.notDeepEqual(Buffer.from(again!.data!), Buffer.from(encoded!.data!));
  });

  it('passes payloads without its encoding through (plain JSON from `temporal workflow start --input`), touching no key', async () => {
    forgetCodecKeys();
    const config = { backupDir: '/nonexistent/backups', encryption: { keyFile: '/nonexistent/master.key', cipher: 'aes-256-gcm', kms: { region: 'us-east-1', keyId: 'alias/x', endpoint: 'http://127.0.0.1:9' } } } as unknown as LifelineConfig;
    const input: Payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('{"database":"moneyflow"}') };
    const [out] = await codecOf(config).decode([input]);
    assert.equal(out, input);
    assert.deepEqual(await codecOf(config).encode([]), []);
  });

  it('names the key id it does not have, and what to do', async () => {
    forgetCodecKeys();
    const a = await installation();
    const b = await installation();
    const [encoded] = await codecOf(a.config).encode([plain()]);
    const keyId = text(encoded!.metadata![KEY_ID_METADATA]);
    forgetCodecKeys(); // another process, with another repository
    await assert.rejects(codecOf(b.config).decode([encoded!]), (err: unknown) => {
      assert.ok(err instanceof LifelineError);
      assert.equal(err.code, 'CodecKeyUnknown');
      assert.match(err.message, new RegExp(`codec key ${keyId}`));
      assert.match(err.message, new RegExp(path.join(b.backupDir, 'codec').replace(/[/.]/g, '\\$&')));
      assert.match(err.hint!, /BACKUP_DIR/);
      return true;
    });
  });

  it('refuses a changed byte, a payload moved under another key id, and a missing key id', async () => {
    forgetCodecKeys();
    const { config } = await installation();
    const codec = codecOf(config);
    const [encoded] = await codec.encode([plain()]);
    const keyId = text(encoded!.metadata![KEY_ID_METADATA]);
    for (const at of [0, 20, encoded!.data!.length - 1]) {
      const data = Buffer.from(encoded!.data!);
      data[at]! ^= 1;
      await assert.rejects(codec.decode([{ ...encoded!, data }]), (err: unknown) => {
        assert.ok(err instanceof LifelineError);
        assert.equal(err.code, 'PayloadUndecryptable');
        assert.match(err.message, new RegExp(`codec key ${keyId} does not decrypt`));
        assert.ok(err.hint);
        return true;
      });
    }
    await assert.rejects(codec.decode([{ metadata: { encoding: Buffer.from(ENCRYPTED_ENCODING) }, data: encoded!.data }]), /has no encryption-key-id/);
    // The same bytes under a fixed key with another id: that key is unknown to this installation.
    const other = fixedCodecKeys([Buffer.alloc(32, 7)]);
    await assert.rejects(new LifelineCodec(other).decode([encoded!]), /CodecKeyUnknown|not among/);
  });

  it('after a master key rotation encrypts with a new codec key, and older payloads still decrypt (all keys re-wrapped under the new master key)', async () => {
    forgetCodecKeys();
    const { config, keyFile, backupDir } = await installation();
    const [old] = await codecOf(config).encode([plain()]);
    const oldId = text(old!.metadata![KEY_ID_METADATA]);
    const rotated = await new LocalKeyFileProvider(keyFile).rotate('rotation-1');
    const outcome = await codecKeysFor(config).rotate(rotated.keyId);
    assert.equal(outcome.rewrapped, 1);
    assert.ok(outcome.added && outcome.added !== oldId);
    // Idempotent: a retried step changes nothing.
    assert.deepEqual(await codecKeysFor(config).rotate(rotated.keyId), { rewrapped: 0 });
    const [fresh] = await codecOf(config).encode([plain()]);
    assert.equal(text(fresh!.metadata![KEY_ID_METADATA]), outcome.added);
    const records = readdirSync(path.join(backupDir, 'codec')).map((f) => JSON.parse(readFileSync(path.join(backupDir, 'codec', f), 'utf8')));
    assert.deepEqual(records.map((r) => r.keyId), [rotated.keyId, rotated.keyId]);
    assert.deepEqual(records[0].previousKeyIds, [rotated.previousKeyId]);
    // A new process (nothing cached) decrypts both.
    forgetCodecKeys();
    const store = new CodecKeyStore(backupDir, async () => (await import('../../src/crypto/keys')).keyringFor(config));
    const decoded = await new LifelineCodec(store).decode([old!, fresh!]);
    for (const d of decoded) assert.deepEqual(defaultPayloadConverter.fromPayload(d), SECRET_LOOKING);
  });

  it('processes making the first key at the same moment end up with one key', async () => {
    forgetCodecKeys();
    const { config, backupDir } = await installation();
    const keyring = async () => (await import('../../src/crypto/keys')).keyringFor(config);
    const stores = [0, 1, 2].map(() => new CodecKeyStore(backupDir, keyring));
    const keys = await Promise.all(stores.map((s) => s.current()));
    assert.equal(new Set(keys.map((k) => k.id)).size, 1);
    assert.deepEqual(readdirSync(path.join(backupDir, 'codec')).filter((f) => !f.startsWith('.')), ['key-0001.json']);
  });

  it('a codec folder it cannot read fails with a typed error naming the folder', async () => {
    forgetCodecKeys();
    const { config, backupDir } = await installation();
    await codecOf(config).encode([plain()]);
    const { mkdirSync, writeFileSync: write } = await import('node:fs');
    const other = { ...config, backupDir: path.join(backupDir, 'not-a-repo') } as LifelineConfig;
    mkdirSync(other.backupDir);
    write(path.join(other.backupDir, 'codec'), 'a file where the folder should be');
    await assert.rejects(codecOf(other).encode([plain()]), (err: unknown) => {
      assert.ok(err instanceof LifelineError);
      assert.match(err.message, new RegExp(`${path.join(other.backupDir, 'codec').replace(/[/.]/g, '\\$&')}`));
      assert.ok(err.hint);
      return true;
    });
  });

  it('a key file that names another key id than its key opens to is refused', async () => {
    forgetCodecKeys();
    const { config, backupDir } = await installation();
    await codecOf(config).encode([plain()]);
    const file = path.join(backupDir, 'codec', 'key-0001.json');
    const record = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...record, codecKeyId: '0123456789abcdef' }));
    forgetCodecKeys();
    await assert.rejects(codecOf(config).encode([plain()]), /was altered: its key opens to [0-9a-f]{16}, not the 0123456789abcdef/);
    assert.ok(existsSync(file));
  });

  it('failure messages and stack traces travel encrypted, and decode to the same error', async () => {
    forgetCodecKeys();
    const { config } = await installation();
    const converter = loadDataConverter(dataConverterFor(config));
    const failure = await encodeErrorToFailure(converter, ApplicationFailure.create({ message: 'table public.transactions: 123457 rows', type: 'Mismatch' }));
    assert.equal(failure.message, 'Encoded failure');
    assert.equal(failure.stackTrace, '');
    assert.equal(text(failure.encodedAttributes!.metadata!.encoding), ENCRYPTED_ENCODING);
    const decoded = await decodeOptionalFailureToOptionalError(converter, failure);
    assert.equal(decoded?.message, 'table public.transactions: 123457 rows');
  });
});
