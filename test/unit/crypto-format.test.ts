import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { Decryptor } from '../../src/crypto/decryptor';
import { Encryptor } from '../../src/crypto/encryptor';
import { HEADER_BYTES, MIN_CHUNK_BYTES, TAG_BYTES } from '../../src/crypto/format';
import { IntegrityError, WrongKeyError } from '../../src/errors';

const CHUNK = MIN_CHUNK_BYTES;

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

async function encrypt(key: Buffer, plain: Buffer, pieces = 7): Promise<Buffer> {
  // Feed in uneven pieces so chunk boundaries never line up with writes.
  const step = Math.max(1, Math.ceil(plain.length / pieces));
  const parts = Array.from({ length: Math.ceil(plain.length / step) }, (_, i) => plain.subarray(i * step, (i + 1) * step));
  return collect(Readable.from(parts).pipe(new Encryptor(key, CHUNK)));
}

async function decrypt(key: Buffer, sealed: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([sealed]), new Decryptor(key), async function* (source) {
    for await (const c of source) out.push(c as Buffer);
  });
  return Buffer.concat(out);
}

describe('encrypted format (chunked AES-256-GCM)', () => {
  const key = randomBytes(32);

  for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 123]) {
    it(`round-trips ${size} bytes`, async () => {
      const plain = randomBytes(size);
      const sealed = await encrypt(key, plain);
      const chunks = Math.floor(size / CHUNK) + 1;
      assert.equal(sealed.length, HEADER_BYTES + size + chunks * TAG_BYTES);
      assert.deepEqual(await decrypt(key, sealed), plain);
    });
  }

  it('never repeats a ciphertext for the same plaintext and key', async () => {
    const plain = randomBytes(2 * CHUNK);
    assert.notDeepEqual(await encrypt(key, plain), await encrypt(key, plain));
  });

  it('detects one flipped byte in any chunk', async () => {
    const sealed = await encrypt(key, randomBytes(3 * CHUNK + 10));
    for (const offset of [HEADER_BYTES + 5, HEADER_BYTES + CHUNK + TAG_BYTES + 1, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[offset]! ^= 0x01;
      await assert.rejects(decrypt(key, bad), (err: Error) => err instanceof IntegrityError && /fails authentication/.test(err.message));
    }
  });

  it('detects a flipped header byte as a wrong key or a foreign file', async () => {
    const sealed = await encrypt(key, randomBytes(100));
    const bad = Buffer.from(sealed);
    bad[HEADER_BYTES - 1]! ^= 0x80;
    await assert.rejects(decrypt(key, bad), WrongKeyError);
    const foreign = Buffer.from(sealed);
    foreign[0] = 0x00;
    await assert.rejects(decrypt(key, foreign), /not a Lifeline encrypted backup/);
  });

  it('detects truncation at a chunk boundary and inside a chunk', async () => {
    const sealed = await encrypt(key, randomBytes(3 * CHUNK + 10));
    const atBoundary = sealed.subarray(0, HEADER_BYTES + 2 * (CHUNK + TAG_BYTES));
    await assert.rejects(decrypt(key, atBoundary), (err: Error) => err instanceof IntegrityError && /truncated/.test(err.message));
    const inside = sealed.subarray(0, sealed.length - 5);
    await assert.rejects(decrypt(key, inside), IntegrityError);
    await assert.rejects(decrypt(key, sealed.subarray(0, 10)), /shorter than its/);
  });

  it('detects reordered chunks', async () => {
    const sealed = await encrypt(key, randomBytes(3 * CHUNK + 10));
    const size = CHUNK + TAG_BYTES;
    const header = sealed.subarray(0, HEADER_BYTES);
    const c0 = sealed.subarray(HEADER_BYTES, HEADER_BYTES + size);
    const c1 = sealed.subarray(HEADER_BYTES + size, HEADER_BYTES + 2 * size);
    const rest = sealed.subarray(HEADER_BYTES + 2 * size);
    await assert.rejects(decrypt(key, Buffer.concat([header, c1, c0, rest])), (err: Error) => /chunk 0 fails authentication/.test(err.message));
  });

  it('detects a chunk dropped from the middle', async () => {
    const sealed = await encrypt(key, randomBytes(3 * CHUNK + 10));
    const size = CHUNK + TAG_BYTES;
    const dropped = Buffer.concat([sealed.subarray(0, HEADER_BYTES + size), sealed.subarray(HEADER_BYTES + 2 * size)]);
    await assert.rejects(decrypt(key, dropped), IntegrityError);
  });

  it('decrypts input cut anywhere (chunk bodies and tags split across pieces) and passes no unauthenticated byte', async () => {
    const plain = randomBytes(3 * CHUNK + 77);
    const sealed = await encrypt(key, plain, 5);
    for (const piece of [1, 15, 16, 17, CHUNK - 3, CHUNK + TAG_BYTES + 1]) {
      const pieces = Array.from({ length: Math.ceil(sealed.length / piece) }, (_, i) => sealed.subarray(i * piece, (i + 1) * piece));
      assert.deepEqual(await collect(Readable.from(pieces).pipe(new Decryptor(key))), plain, `pieces of ${piece}`);
    }
    // The second chunk's tag altered: at most the first chunk's plaintext comes out, none of the second's.
    const bad = Buffer.from(sealed);
    bad[HEADER_BYTES + 2 * (CHUNK + TAG_BYTES) - 1]! ^= 0x01;
    const out: Buffer[] = [];
    const pieces = Array.from({ length: Math.ceil(bad.length / 100) }, (_, i) => bad.subarray(i * 100, (i + 1) * 100));
    await assert.rejects(
      pipeline(Readable.from(pieces), new Decryptor(key), async function* (source) {
        for await (const c of source) out.push(c as Buffer);
      }),
      /chunk 1 fails authentication/,
    );
    const passed = Buffer.concat(out);
    assert.ok(passed.length <= CHUNK, `${passed.length} bytes passed`);
    assert.deepEqual(passed, plain.subarray(0, passed.length));
  });

  it('refuses the wrong key with a clear error before any data', async () => {
    const sealed = await encrypt(key, randomBytes(2 * CHUNK));
    await assert.rejects(decrypt(randomBytes(32), sealed), (err: Error) => err instanceof WrongKeyError && /does not match this backup/.test(err.message));
  });
});
