import { createHmac, hkdfSync } from 'node:crypto';
import { macEquals } from '../crypto/mac';

/**
 * A manifest's MAC: HMAC-SHA256 under a key derived (HKDF) from the backup's own data key, so only
 * someone who can unwrap that key (the key provider) can write a manifest Lifeline trusts. Key
 * rotation re-wraps the same data key, so a MAC outlives every rotation.
 */
const MAC_LABEL = 'lifeline/v1/manifest-mac';

/**
 * Not covered: `mac` itself, and where this copy is (`object`: its storage and key; `replica`:
 * where it was copied from and when). A copy in a destination or a drill's work folder is the same
 * backup; its object key is checked against the backup id instead (see checkManifestNaming).
 */
export const UNAUTHENTICATED_FIELDS = ['mac', 'object', 'replica'] as const;

/** JSON with keys sorted at every level and undefined fields left out: the same bytes for the same manifest. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function macKey(dataKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), MAC_LABEL, 32));
}

export function manifestMac(manifest: object, dataKey: Buffer): string {
  const covered = Object.fromEntries(Object.entries(manifest).filter(([k]) => !(UNAUTHENTICATED_FIELDS as readonly string[]).includes(k)));
  return createHmac('sha256', macKey(dataKey)).update(canonicalJson(covered)).digest('hex');
}

export function macMatches(manifest: object & { mac?: string }, dataKey: Buffer): boolean {
  return macEquals(manifestMac(manifest, dataKey), manifest.mac);
}
