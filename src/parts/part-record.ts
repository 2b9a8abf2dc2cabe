import { z } from 'zod';
import { PART_NAME_PATTERN } from './part-names';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * One stored object of a parts-format backup, as the (authenticated) manifest lists it. Sizes and
 * SHA-256s are of the stored (encrypted) bytes and of the plain bytes after decryption and
 * decompression: a missing, swapped, truncated or altered part fails against them, by name.
 */
export const PartSchema = z.object({
  name: z.string().regex(PART_NAME_PATTERN),
  kind: z.enum(['archive', 'globals', 'table-data']),
  /** table-data: the table (its pg_class OID at dump time, as `tables[].oid`) and the rows in this part. */
  tableOid: z.number().int().positive().optional(),
  rows: z.number().int().nonnegative().optional(),
  rawBytes: z.number().int().nonnegative(),
  storedBytes: z.number().int().nonnegative(),
  sha256,
  rawSha256: sha256,
});
export type PartRecord = z.infer<typeof PartSchema>;

export const PARTS_FORMAT = 'parts-v1';
