import { z } from 'zod';
import { IntegrityError } from '../errors';
import { KEY_PROVIDERS, type KeyProviderKind } from '../crypto/keys/key-provider';
import { keyIdProblem } from '../crypto/keys/key-ids';
import { FILE_EXTENSION } from '../pipeline/compression';
import { PARTS_FORMAT, PartSchema } from '../parts/part-record';
import { partsProblem } from '../parts/parts-of';
import { BACKUP_TYPES, dataKey, parseBackupId } from './naming';

/** A key id in a repository file must be a plain id of its provider (it becomes a path, or the KMS key asked). */
export function refineKeyId(w: { provider: KeyProviderKind; keyId: string }, ctx: z.RefinementCtx, path: string[]): void {
  const problem = keyIdProblem(w.provider, w.keyId);
  if (problem) ctx.addIssue({ code: 'custom', path, message: problem });
}

export const TableCountSchema = z.object({
  schema: z.string(),
  name: z.string(),
  /** 'table' holds rows itself; 'partitioned' is the parent of partitions, counted through them. */
  kind: z.enum(['table', 'partitioned']),
  rows: z.number().int().nonnegative(),
  /** pg_class OID at dump time: finds the table's TABLE DATA entry in the archive (absent in older manifests). */
  oid: z.number().int().positive().optional(),
  /** A partition: its partitioned parent's OID (a `--tables parent` restore takes every partition). */
  parentOid: z.number().int().positive().optional(),
  /** Parts format: the columns COPY reads and writes, in order (no dropped or generated ones). */
  columns: z.array(z.string()).optional(),
});
export type TableCount = z.infer<typeof TableCountSchema>;

/** "schema.table", the name restores and messages use. */
export function qualifiedName(t: { schema: string; name: string }): string {
  return `${t.schema}.${t.name}`;
}

export function splitQualifiedName(table: string): { schema: string; name: string } {
  const dot = table.indexOf('.');
  return { schema: table.slice(0, dot), name: table.slice(dot + 1) };
}

/** What the dump step produced: everything about the stored object, before it is verified. */
export const DumpRecordSchema = z.object({
  id: z.string(),
  database: z.string(),
  type: z.enum(BACKUP_TYPES),
  startedAt: z.string(),
  finishedAt: z.string(),
  postgres: z.object({ serverVersion: z.string(), pgDumpVersion: z.string() }),
  sizes: z.object({
    databaseBytes: z.number().int().nonnegative(),
    rawBytes: z.number().int().nonnegative(),
    compressedBytes: z.number().int().nonnegative(),
    storedBytes: z.number().int().nonnegative(),
  }),
  /** SHA-256 of the stored (encrypted) object: checkable without any key. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** SHA-256 of the plain pg_dump archive: proves decryption and decompression give back the dump. */
  rawSha256: z.string().regex(/^[0-9a-f]{64}$/),
  compression: z.object({ algorithm: z.enum(['zstd', 'gzip']), level: z.number().int() }),
  encryption: z.object({
    format: z.literal('lifeline-aes-256-gcm-stream-v1'),
    chunkBytes: z.number().int().positive(),
    keyProvider: z.enum(KEY_PROVIDERS),
    keyId: z.string(),
    wrappedKey: z.string(),
  }).superRefine((e, ctx) => refineKeyId({ provider: e.keyProvider, keyId: e.keyId }, ctx, ['keyId'])),
  object: z.object({ storage: z.string(), key: z.string() }),
  /**
   * Absent: one stream, `object` is the whole pg_dump archive. `parts-v1`: `object` is the archive
   * part (everything but the rows of the tables stored as parts) and `parts` lists every object,
   * the archive included; `sizes` are then totals over all parts. See src/parts/.
   */
  format: z.literal(PARTS_FORMAT).optional(),
  parts: z.array(PartSchema).optional(),
  tables: z.array(TableCountSchema),
  largeObjects: z.number().int().nonnegative(),
  /** Checksums of the rows of the database's critical tables (drill.criticalTables), in the dump's snapshot. */
  checksums: z.record(z.string(), z.string()).optional(),
  workflow: z.object({ workflowId: z.string(), runId: z.string() }).optional(),
  /** On a copy in a replication destination: where it came from and when its read-back matched. */
  replica: z.object({ from: z.string(), replicatedAt: z.string(), readBackSha256: z.string() }).optional(),
});
export type DumpRecord = z.infer<typeof DumpRecordSchema>;

export const VerificationSchema = z.object({
  verifiedAt: z.string(),
  method: z.string(),
  storedSha256: z.string(),
  rawSha256: z.string(),
  tocEntries: z.number().int().nonnegative(),
  tableDataEntries: z.number().int().nonnegative(),
  durationMs: z.number().nonnegative(),
});
export type Verification = z.infer<typeof VerificationSchema>;

/** Version 2 carries a MAC (see manifest-mac.ts); version 1 manifests are read, but never trusted. */
export const MANIFEST_VERSION = 2;
/**
 * A parts-format backup's manifest is version 3: a Lifeline that predates parts refuses it as from a
 * newer version instead of reading only its archive part, which holds none of the part tables' rows.
 */
export const PARTS_MANIFEST_VERSION = 3;
const NEWEST_MANIFEST_VERSION = PARTS_MANIFEST_VERSION;

/** The version a new manifest of this record is written with. */
export function manifestVersionFor(record: Pick<DumpRecord, 'format'>): number {
  return record.format === PARTS_FORMAT ? PARTS_MANIFEST_VERSION : MANIFEST_VERSION;
}

/** The catalog entry: written only once a backup is complete and verified. */
export const ManifestSchema = DumpRecordSchema.extend({
  manifestVersion: z.union([z.literal(1), z.literal(MANIFEST_VERSION), z.literal(PARTS_MANIFEST_VERSION)]),
  /** HMAC-SHA256 of the manifest under a key derived from the backup's data key. */
  mac: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  status: z.literal('verified'),
  verification: VerificationSchema,
  trigger: z.string(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export function parseManifest(text: string, where: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new IntegrityError(`manifest ${where} is not valid JSON: ${(err as Error).message}`);
  }
  const version = (json as { manifestVersion?: unknown } | null)?.manifestVersion;
  if (typeof version === 'number' && version > NEWEST_MANIFEST_VERSION) {
    throw new IntegrityError(`manifest ${where} is manifest version ${version}, written by a newer Lifeline (this one reads up to ${NEWEST_MANIFEST_VERSION})`, 'upgrade Lifeline to read this backup');
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    throw new IntegrityError(
      `manifest ${where} is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}

/**
 * Names agree: the id names the database, and the data object is the one named after the id
 * (`<db>/<id>.dump.<ext>.enc`, or only its file name for a copy outside a repository). A manifest or
 * data file copied under another backup's name fails here.
 */
export function namingProblem(m: Pick<DumpRecord, 'id' | 'database' | 'object' | 'compression' | 'format' | 'parts' | 'sha256' | 'tables'>, opts: { inRepository: boolean }): string | undefined {
  if (parseBackupId(m.id)?.database !== m.database) return `its id ${m.id} is not a backup id of database ${m.database}`;
  const version = (m as { manifestVersion?: number }).manifestVersion;
  if (version !== undefined && version >= MANIFEST_VERSION && version !== manifestVersionFor(m)) return `its manifest version ${version} is not the one its format is written with`;
  const parts = partsProblem(m);
  if (parts) return parts;
  const expected = dataKey(m.database, m.id, FILE_EXTENSION[m.compression.algorithm]);
  const actual = opts.inRepository ? m.object.key : `${m.database}/${m.object.key.slice(m.object.key.lastIndexOf('/') + 1)}`;
  return actual === expected ? undefined : `its data object ${m.object.key} is not ${opts.inRepository ? expected : expected.slice(m.database.length + 1)}, the one named after backup ${m.id}`;
}
