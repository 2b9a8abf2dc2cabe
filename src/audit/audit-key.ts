import { createHmac } from 'node:crypto';
import { macEquals } from '../crypto/mac';
import path from 'node:path';
import { z } from 'zod';
import type { EncryptionContext, Keyring, WrappedDataKey } from '../crypto/keys';
import { KEY_PROVIDERS } from '../crypto/keys/key-provider';
import { rewrapChecked, wrappingOf } from '../crypto/keys/wrapped-key';
import { errorMessage, IntegrityError, LifelineError } from '../errors';
import { logger } from '../logger';
import { readFile, writeFileAtomically } from '../storage/safe-fs';

/**
 * The key of the audit chain: a random 256-bit key, kept only wrapped by the installation's key
 * provider (local key file or KMS) in `audit-key.json` beside the log, like a backup's data key.
 * Whoever can write the repository but not use the key provider cannot compute a line's MAC.
 */

/** What the wrapping is bound to. No database name holds ':', so no backup's data key has this context. */
export const AUDIT_KEY_CONTEXT: EncryptionContext = { database: 'lifeline:audit', backupId: 'audit.jsonl' };

const AuditKeyFileSchema = z.object({
  version: z.literal(1),
  purpose: z.literal('lifeline audit log'),
  /** A fingerprint of the plaintext key (not the key): lines name it, so a swapped key file is named too. */
  auditKeyId: z.string(),
  /** Lines from this seq on are keyed; those before were written by the unkeyed (SHA-256) chain. */
  keyedFromSeq: z.number().int().positive(),
  /** MAC of auditKeyId and keyedFromSeq: moving the start to pass keyed lines off as legacy ones fails. */
  startMac: z.string(),
  provider: z.enum(KEY_PROVIDERS),
  keyId: z.string(),
  wrappedKey: z.string(),
  createdAt: z.string(),
  rewrappedAt: z.string().optional(),
  /** Master keys that wrapped it before, oldest first. */
  previousKeyIds: z.array(z.string()),
  /** Made by `lifeline audit reset` over a lost chain: anchors apart from it (covered by startMac). */
  anchorsApart: z.literal(true).optional(),
});
export type AuditKeyFile = z.infer<typeof AuditKeyFileSchema>;

export function auditKeyFile(logFile: string): string {
  return path.join(path.dirname(logFile), 'audit-key.json');
}

/** The repository that holds the `audit/` folder: below it no folder or file may be a symlink (safe-fs.ts). */
export function auditRepository(auditFile: string): string {
  return path.dirname(path.dirname(auditFile));
}

/** The unwrapped key, usable only through `mac()`: the plaintext never leaves this object. */
export class AuditKey {
  readonly id: string;
  private readonly key: Buffer;

  /** Keeps a copy: the caller zeroes its buffer. */
  constructor(
    key: Buffer,
    readonly keyedFromSeq: number,
    readonly anchorsApart = false,
  ) {
    this.key = Buffer.from(key);
    this.id = createHmac('sha256', key).update('lifeline/audit-key-id').digest('hex').slice(0, 16);
  }

  mac(text: string): string {
    return createHmac('sha256', this.key).update(text).digest('hex');
  }

  /** Constant-time comparison of a claimed MAC with the MAC of `text`. */
  checks(text: string, claimed: unknown): boolean {
    return macEquals(this.mac(text), claimed);
  }

  /** Binds where the keyed chain starts to this key (domain-separated from line MACs, which are JSON). */
  startMac(): string {
    return this.mac(this.startText());
  }

  provesStart(claimed: unknown): boolean {
    return this.checks(this.startText(), claimed);
  }

  private startText(): string {
    return `lifeline/audit-start\n${this.id}\n${this.keyedFromSeq}${this.anchorsApart ? '\nanchors-apart' : ''}`;
  }

  /** Where its anchors go: see anchorKey(). */
  get anchorChain(): string | undefined {
    return this.anchorsApart ? this.id : undefined;
  }
}

export async function readAuditKeyFile(file: string): Promise<AuditKeyFile | undefined> {
  const body = await readFile(auditRepository(file), file);
  if (!body) return undefined;
  const text = body.toString('utf8');
  let parsed: ReturnType<typeof AuditKeyFileSchema.safeParse>;
  try {
    parsed = AuditKeyFileSchema.safeParse(JSON.parse(text));
  } catch {
    parsed = { success: false } as typeof parsed;
  }
  if (!parsed.success) throw new IntegrityError(`audit key file ${file} is malformed`, 'restore audit-key.json from a copy of the repository');
  return parsed.data;
}


/**
 * Keys this process has unwrapped, by wrapping: a worker keeps writing audit entries (a failed
 * backup, a refused decision) while the key provider is briefly unreachable, and asks KMS once.
 */
const unwrapped = new Map<string, AuditKey>();

async function openRecord(file: string, record: AuditKeyFile, keyring: Keyring): Promise<AuditKey> {
  const cacheKey = `${file}\n${record.keyId}\n${record.wrappedKey}\n${record.keyedFromSeq}\n${record.anchorsApart}`;
  let key = unwrapped.get(cacheKey);
  if (!key) {
    const plaintext = await keyring.unwrap(wrappingOf(record), AUDIT_KEY_CONTEXT);
    key = new AuditKey(plaintext, record.keyedFromSeq, record.anchorsApart);
    plaintext.fill(0);
  }
  if (key.id !== record.auditKeyId || !key.provesStart(record.startMac)) {
    throw new IntegrityError(
      `audit key file ${file} was altered: its key id or keyed-from sequence does not match its MAC`,
      'restore audit-key.json from a copy of the repository; the audit log cannot be checked without it',
    );
  }
  unwrapped.set(cacheKey, key);
  return key;
}

const missingKey = (file: string) =>
  new LifelineError('AuditKeyMissing', `the audit log has keyed lines but its key file ${file} is missing`, {
    hint: 'restore audit-key.json from a copy of the repository; a new key would not verify the existing lines, so none is made',
  });

export interface NewKeyOptions {
  check?: () => Promise<void>;
  anchorsApart?: true;
}

/** Where the audit key comes from: opened for checking, or for writing (made on first use, re-wrapped after a key rotation). */
export interface AuditKeySource {
  readonly file: string;
  /** The key, or undefined when the log was never keyed. */
  open(): Promise<AuditKey | undefined>;
  /**
   * The key new lines are written with. `nextSeq` (read under the log's lock) is where the keyed
   * chain starts if there is no key yet; `logIsKeyed` says whether the log already has keyed lines.
   * `creating.check` runs before a new key is made and may refuse it (history found offsite);
   * `creating.anchorsApart` makes a key that anchors apart (`lifeline audit reset`).
   */
  forWriting(nextSeq: number, logIsKeyed: boolean, creating?: NewKeyOptions): Promise<AuditKey>;
}

export function auditKeySource(file: string, keyring: Keyring): AuditKeySource {
  return {
    file,
    async open() {
      const record = await readAuditKeyFile(file);
      return record && openRecord(file, record, keyring);
    },

    async forWriting(nextSeq, logIsKeyed, creating = {}) {
      const record = await readAuditKeyFile(file);
      if (record) {
        const key = await openRecord(file, record, keyring);
        // The key opened: a re-wrap that fails now (current provider unreachable) waits for the next append.
        await rewrapIfStale(file, record, key, keyring).catch((err) =>
          logger.warn({ file }, `audit key not yet re-wrapped under the current master key: ${errorMessage(err)}`),
        );
        return key;
      }
      if (logIsKeyed) throw missingKey(file);
      await creating.check?.();
      const generated = await keyring.current.generateDataKey(AUDIT_KEY_CONTEXT);
      const key = new AuditKey(generated.plaintext, nextSeq, creating.anchorsApart);
      generated.plaintext.fill(0);
      const fresh: AuditKeyFile = {
        version: 1,
        purpose: 'lifeline audit log',
        auditKeyId: key.id,
        keyedFromSeq: nextSeq,
        startMac: key.startMac(),
        provider: generated.provider,
        keyId: generated.keyId,
        wrappedKey: generated.wrappedKey,
        createdAt: new Date().toISOString(),
        previousKeyIds: [],
        ...(creating.anchorsApart && { anchorsApart: true as const }),
      };
      // link(): the first writer's key wins.
      if (await writeFileAtomically(auditRepository(file), file, JSON.stringify(fresh, null, 2) + '\n', true)) return key;
      return this.forWriting(nextSeq, logIsKeyed, creating); // another writer made one first: use theirs
    },
  };
}

/**
 * After a master key rotation the same audit key is wrapped again under the new master key (and
 * opened again before the file is replaced), so every line keeps verifying and the old master key
 * can be retired once no backup uses it.
 */
async function rewrapIfStale(file: string, record: AuditKeyFile, key: AuditKey, keyring: Keyring): Promise<void> {
  const currentKeyId = await keyring.current.currentKeyId();
  if (record.keyId === currentKeyId) return;
  const rewrapped = await rewrapChecked(keyring, record, AUDIT_KEY_CONTEXT, 'audit key', (opened) => new AuditKey(opened, record.keyedFromSeq).id === key.id);
  const next: AuditKeyFile = {
    ...record,
    ...rewrapped,
    rewrappedAt: new Date().toISOString(),
    previousKeyIds: [...record.previousKeyIds, record.keyId],
  };
  await writeFileAtomically(auditRepository(file), file, JSON.stringify(next, null, 2) + '\n');
}
