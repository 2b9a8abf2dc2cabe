import assert from 'node:assert/strict';
import { test } from 'node:test';
import { namingProblem, parseManifest, PARTS_MANIFEST_VERSION, type Manifest } from '../../src/catalog/manifest';

const hex = (c: string) => c.repeat(64);
const id = 'shop_backup_20261128_030000';

function manifest(overrides: Partial<Manifest> = {}): Manifest {
  const archive = { name: 'archive', kind: 'archive' as const, rawBytes: 10, storedBytes: 20, sha256: hex('a'), rawSha256: hex('b') };
  return {
    id, database: 'shop', type: 'full', startedAt: '2026-11-28T03:00:00Z', finishedAt: '2026-11-28T03:01:00Z',
    postgres: { serverVersion: '15.19', pgDumpVersion: '15.19' },
    sizes: { databaseBytes: 1, rawBytes: 10, compressedBytes: 15, storedBytes: 20 },
    sha256: hex('a'), rawSha256: hex('b'), compression: { algorithm: 'zstd', level: 3 },
    encryption: { format: 'lifeline-aes-256-gcm-stream-v1', chunkBytes: 1048576, keyProvider: 'local', keyId: 'k1', wrappedKey: 'x' },
    object: { storage: 'local', key: `shop/${id}.dump.zst.enc` },
    format: 'parts-v1', parts: [archive], tables: [], largeObjects: 0,
    manifestVersion: PARTS_MANIFEST_VERSION, mac: hex('c'), status: 'verified',
    verification: { verifiedAt: '2026-11-28T03:01:00Z', method: 'm', storedSha256: hex('a'), rawSha256: hex('b'), tocEntries: 1, tableDataEntries: 0, durationMs: 1 },
    trigger: 'schedule',
    ...overrides,
  };
}

test('a parts manifest is version 3 and a consistent one has no naming problem', () => {
  assert.equal(namingProblem(manifest(), { inRepository: true }), undefined);
});

test('a parts manifest claiming version 2 (what a reader before parts would take) is refused', () => {
  assert.match(namingProblem(manifest({ manifestVersion: 2 }), { inRepository: true }) ?? '', /manifest version 2 is not the one its format is written with/);
});

test('a manifest from a newer Lifeline is refused with the versions and what to do', () => {
  const text = JSON.stringify({ ...manifest(), manifestVersion: 4 });
  assert.throws(() => parseManifest(text, 'shop/x.manifest.json'), (err: Error & { hint?: string }) => /manifest version 4, written by a newer Lifeline \(this one reads up to 3\)/.test(err.message) && /upgrade Lifeline/.test(err.hint ?? ''));
});
