/**
 * Multipart arithmetic. S3 allows at most 10,000 parts of 5 MiB to 5 GiB each (the last may be
 * smaller) and objects up to 5 TiB. The part size grows with the object: small backups use small
 * parts (less to resend after a failure), and no object up to 5 TiB needs more than 10,000.
 */
export const MIB = 1024 * 1024;
export const MIN_PART_BYTES = 8 * MIB;
export const MAX_PART_BYTES = 5 * 1024 * MIB;
export const MAX_PARTS = 10_000;
export const MAX_OBJECT_BYTES = 5 * 1024 * 1024 * MIB;

/** Part size (a whole number of MiB) for an object of `bytes`. */
export function partSizeFor(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`object size must be a whole number of bytes, got ${bytes}`);
  if (bytes > MAX_OBJECT_BYTES) throw new RangeError(`object of ${bytes} bytes is over S3's 5 TiB limit`);
  return Math.max(MIN_PART_BYTES, Math.ceil(bytes / MAX_PARTS / MIB) * MIB);
}

/** Byte ranges [start, end) of each part, part numbers from 1. */
export function partRanges(bytes: number, partBytes = partSizeFor(bytes)): { partNumber: number; start: number; end: number }[] {
  const parts = [];
  for (let start = 0, n = 1; start < bytes || n === 1; start += partBytes, n++) {
    parts.push({ partNumber: n, start, end: Math.min(bytes, start + partBytes) });
    if (bytes === 0) break;
  }
  return parts;
}
