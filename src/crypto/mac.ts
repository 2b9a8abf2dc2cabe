import { timingSafeEqual } from 'node:crypto';

/** A claimed HMAC-SHA256 (64 hex digits) against the one computed, in constant time; anything else is false. */
export function macEquals(computedHex: string, claimed: unknown): boolean {
  if (typeof claimed !== 'string' || !/^[0-9a-f]{64}$/.test(claimed)) return false;
  return timingSafeEqual(Buffer.from(computedHex, 'hex'), Buffer.from(claimed, 'hex'));
}
