import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_OBJECT_BYTES, MAX_PART_BYTES, MAX_PARTS, MIB, MIN_PART_BYTES, partRanges, partSizeFor } from '../../src/storage/part-size';

const GIB = 1024 * MIB;
const TIB = 1024 * GIB;

describe('multipart part sizes', () => {
  it('keeps every object up to 5 TiB within 10,000 parts of 5 MiB to 5 GiB', () => {
    const sizes = [0, 1, MIN_PART_BYTES - 1, MIN_PART_BYTES, MIN_PART_BYTES + 1, 80 * GIB - 1, 80 * GIB, 80 * GIB + 1, 500 * GIB, TIB, 3 * TIB + 12345, MAX_OBJECT_BYTES - 1, MAX_OBJECT_BYTES];
    for (let i = 0; i <= 1000; i++) sizes.push(Math.floor((MAX_OBJECT_BYTES * i) / 1000) + (i % 7));
    for (const size of sizes.filter((s) => s <= MAX_OBJECT_BYTES)) {
      const part = partSizeFor(size);
      assert.ok(part >= 5 * MIB && part <= MAX_PART_BYTES, `part ${part} for ${size}`);
      assert.equal(part % MIB, 0);
      assert.ok(Math.ceil(size / part) <= MAX_PARTS, `${Math.ceil(size / part)} parts for ${size}`);
    }
  });

  it('grows with the object: small ones use the smallest parts', () => {
    assert.equal(partSizeFor(200 * MIB), MIN_PART_BYTES);
    assert.equal(partSizeFor(MAX_PARTS * MIN_PART_BYTES), MIN_PART_BYTES);
    assert.equal(partSizeFor(MAX_PARTS * MIN_PART_BYTES + 1), MIN_PART_BYTES + MIB);
    assert.equal(partSizeFor(MAX_OBJECT_BYTES), 525 * MIB);
  });

  it('refuses what S3 cannot store', () => {
    assert.throws(() => partSizeFor(MAX_OBJECT_BYTES + 1), /over S3's 5 TiB limit/);
    assert.throws(() => partSizeFor(-1), RangeError);
  });

  it('splits an object into contiguous ranges that cover it exactly', () => {
    const size = 3 * MIN_PART_BYTES + 17;
    const ranges = partRanges(size);
    assert.deepEqual(ranges.map((r) => r.partNumber), [1, 2, 3, 4]);
    assert.equal(ranges[0]!.start, 0);
    for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i]!.start, ranges[i - 1]!.end);
    assert.equal(ranges.at(-1)!.end, size);
    assert.deepEqual(partRanges(0), [{ partNumber: 1, start: 0, end: 0 }]);
  });
});
