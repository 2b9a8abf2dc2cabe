import { z } from 'zod';
import { KEY_PROVIDERS, type WrappedDataKey } from '../crypto/keys/key-provider';
import { IntegrityError } from '../errors';
import type { BackupStorage } from '../storage/storage';
import { refineKeyId, type DumpRecord } from './manifest';
import { KEY_ENVELOPE_SUFFIX, siblingKey } from './naming';

/**
 * A backup's data key as wrapped now. The manifest is written once and never changes; key
 * rotation re-wraps the data key and writes it here, a small object beside the backup that can be
 * replaced atomically. Without one, the manifest's wrapping is current.
 */
export const KeyEnvelopeSchema = z.object({
  envelopeVersion: z.literal(1),
  database: z.string(),
  backupId: z.string(),
  provider: z.enum(KEY_PROVIDERS),
  keyId: z.string(),
  wrappedKey: z.string(),
  rewrappedAt: z.string(),
  rotationId: z.string().optional(),
  /** Every key that wrapped this data key before, oldest first. */
  previousKeyIds: z.array(z.string()),
}).superRefine((e, ctx) => refineKeyId(e, ctx, ['keyId']));
export type KeyEnvelope = z.infer<typeof KeyEnvelopeSchema>;

type BackupRef = Pick<DumpRecord, 'database' | 'id' | 'object'>;

/** Beside the data object, wherever that is: `<db>/<id>.key.json`. */
export const keyEnvelopeKey = (record: BackupRef) => siblingKey(record.object.key, KEY_ENVELOPE_SUFFIX);

export async function readKeyEnvelope(storage: BackupStorage, record: BackupRef): Promise<KeyEnvelope | undefined> {
  const key = keyEnvelopeKey(record);
  const body = await storage.get(key);
  if (!body) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    json = undefined;
  }
  const parsed = KeyEnvelopeSchema.safeParse(json);
  if (!parsed.success) {
    throw new IntegrityError(`key envelope ${storage.describe(key)} is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  if (parsed.data.backupId !== record.id || parsed.data.database !== record.database) {
    throw new IntegrityError(`key envelope ${storage.describe(key)} belongs to backup ${parsed.data.backupId} of ${parsed.data.database}, not ${record.id}`);
  }
  return parsed.data;
}

/** The wrapping that opens this backup now: the envelope's if there is one, else the manifest's. */
export async function currentWrapping(storage: BackupStorage, record: DumpRecord): Promise<WrappedDataKey> {
  const envelope = await readKeyEnvelope(storage, record);
  if (envelope) return { provider: envelope.provider, keyId: envelope.keyId, wrappedKey: envelope.wrappedKey };
  const e = record.encryption;
  return { provider: e.keyProvider, keyId: e.keyId, wrappedKey: e.wrappedKey };
}

export async function writeKeyEnvelope(storage: BackupStorage, record: BackupRef, envelope: KeyEnvelope): Promise<void> {
  await storage.replace(keyEnvelopeKey(record), Buffer.from(JSON.stringify(envelope, null, 2) + '\n'));
}
