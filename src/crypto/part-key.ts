import { hkdfSync } from 'node:crypto';
import { KEY_BYTES } from './format';

/**
 * The key one part of a parts-format backup is encrypted with: HKDF-SHA256 of the backup's data key,
 * bound to the backup id and the part's name. Each part so has its own key (its own nonce space,
 * no nonce shared with a sibling), and a part copied under another name or from another backup fails
 * the key commitment in its header before a single byte is decrypted.
 */
const LABEL = 'lifeline/parts-v1/part-key';

export function partKey(dataKey: Buffer, backupId: string, partName: string): Buffer {
  if (dataKey.length !== KEY_BYTES) throw new RangeError(`data key must be ${KEY_BYTES} bytes`);
  const info = Buffer.concat([Buffer.from(LABEL), Buffer.from([0]), Buffer.from(backupId), Buffer.from([0]), Buffer.from(partName)]);
  return Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), info, KEY_BYTES));
}
