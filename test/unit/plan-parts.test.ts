import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { blockRanges, MAX_PARTS_PER_TABLE, planParts } from '../../src/parts/plan-parts';
import type { TableDetails } from '../../src/postgres/snapshot';
import { loadConfig } from '../../src/config/load';
import { configProblems } from '../harness/config-problems';

const MiB = 1024 * 1024;
const BLOCK = 8192;
const options = { partBytes: 128 * MiB, blockBytes: BLOCK, tidRangeScans: true };

const table = (oid: number, bytes: number, extra: Partial<TableDetails> = {}): TableDetails => ({
  schema: 'public',
  name: `t${oid}`,
  kind: 'table',
  oid,
  columns: ['id'],
  mainBytes: bytes,
  tableBytes: bytes,
  ...extra,
});

/** Every block of 0..blocks-1 (and beyond: the table may have grown) is in exactly one range. */
function assertCovers(ranges: ReturnType<typeof blockRanges>, blocks: number): void {
  assert.equal(ranges[0]!.fromBlock, 0);
  assert.equal(ranges.at(-1)!.toBlock, undefined, 'the last range is open-ended');
  for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i]!.fromBlock, ranges[i - 1]!.toBlock, 'ranges meet');
  for (const r of ranges.slice(0, -1)) assert.ok(r.toBlock! > r.fromBlock && r.toBlock! <= blocks);
}

describe('planning the parts of a backup', () => {
  it('keeps a table up to BACKUP_PART_SIZE whole, and an empty one as one part', () => {
    assert.deepEqual(blockRanges(table(1, 128 * MiB), options), [{ fromBlock: 0 }]);
    assert.deepEqual(blockRanges(table(1, 0), options), [{ fromBlock: 0 }]);
    const parts = planParts([table(1, 0)], options);
    assert.deepEqual(parts.map((p) => [p.name, p.range]), [['t1-0000', undefined]]);
  });

  it('splits a larger table into block ranges of about BACKUP_PART_SIZE that cover it, the last open-ended', () => {
    const ranges = blockRanges(table(1, 1000 * MiB), options);
    assert.equal(ranges.length, 8);
    assertCovers(ranges, (1000 * MiB) / BLOCK);
    // TOAST counts toward the size: a small heap with a large TOAST table is split too.
    const toasted = blockRanges(table(2, 10 * MiB, { tableBytes: 600 * MiB }), options);
    assert.equal(toasted.length, 5);
    assertCovers(toasted, (10 * MiB) / BLOCK);
  });

  it('never makes more parts than blocks, nor more than 9999', () => {
    assert.equal(blockRanges(table(1, 3 * BLOCK, { tableBytes: 1000 * MiB }), options).length, 3);
    const huge = blockRanges(table(1, 2 ** 44), { ...options, partBytes: BLOCK });
    assert.equal(huge.length, MAX_PARTS_PER_TABLE);
    assertCovers(huge, 2 ** 44 / BLOCK);
  });

  it('keeps every table whole before PostgreSQL 14 (no TID range scans)', () => {
    assert.deepEqual(blockRanges(table(1, 1000 * MiB), { ...options, tidRangeScans: false }), [{ fromBlock: 0 }]);
  });

  it('orders parts largest first, skips partitioned parents, names them by OID and index', () => {
    const parts = planParts([table(5, MiB), table(6, 300 * MiB), table(7, 0, { kind: 'partitioned' }), table(8, 120 * MiB)], options);
    assert.deepEqual(parts.map((p) => p.name), ['t8-0000', 't6-0000', 't6-0001', 't6-0002', 't5-0000']);
  });
});

describe('BACKUP_FORMAT and BACKUP_PART_SIZE', () => {
  const env = { DATABASE_URL: 'postgresql://u@h/db' };
  it('default to parts of 128 MiB, and take sizes with units', () => {
    assert.deepEqual(loadConfig({ cwd: '/nonexistent', env }).backup, { format: 'parts', partBytes: 128 * MiB });
    assert.deepEqual(loadConfig({ cwd: '/nonexistent', env: { ...env, BACKUP_FORMAT: 'stream', BACKUP_PART_SIZE: '64k' } }).backup, { format: 'stream', partBytes: 64 * 1024 });
    assert.equal(loadConfig({ cwd: '/nonexistent', env: { ...env, BACKUP_PART_SIZE: '1G' } }).backup.partBytes, 1024 * MiB);
    assert.equal(loadConfig({ cwd: '/nonexistent', env: { ...env, BACKUP_PART_SIZE: '1048576' } }).backup.partBytes, MiB);
  });

  it('refuse other formats and sizes, naming the variable', () => {
    const problems = configProblems(() => loadConfig({ cwd: '/nonexistent', env: { ...env, BACKUP_FORMAT: 'directory', BACKUP_PART_SIZE: '12 parsecs' } }));
    assert.ok(problems.some((p) => p.startsWith('BACKUP_FORMAT = "directory": must be parts')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('BACKUP_PART_SIZE = "12 parsecs": must be a size')), problems.join('\n'));
    const tiny = configProblems(() => loadConfig({ cwd: '/nonexistent', env: { ...env, BACKUP_PART_SIZE: '100' } }));
    assert.ok(tiny.some((p) => p.startsWith('BACKUP_PART_SIZE = "100"')), tiny.join('\n'));
  });
});
