import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { LifelineConfig } from '../config/config';
import { IntegrityError, LifelineError } from '../errors';
import { checkDir, readFile, writeFileAtomically } from '../storage/safe-fs';
import type { EncryptionContext, Keyring, WrappedDataKey } from './keys';
import { KEY_PROVIDERS } from './keys/key-provider';
import { rewrapChecked, wrappingOf } from './keys/wrapped-key';

/**
 * The keys of the payload codec (src/temporal/codec.ts), which encrypts everything Lifeline sends
 * to Temporal. Each is a random 256-bit key kept only wrapped by the installation's key provider
 * (local key file or KMS), one file per key in `<BACKUP_DIR>/codec/key-NNNN.json`; the highest
 * number is the one new payloads are encrypted with, the older ones still decrypt older histories.
 * The first is made on first use; a master key rotation adds the next one (and re-wraps the older
 * ones under the new master key). Keys are unwrapped lazily, on the first payload, and kept in this
 * process by their id (a fingerprint of the key): the plaintext never leaves a CodecKey.
 */

const CodecKeyFileSchema = z.object({
  version: z.literal(1),
  purpose: z.literal('lifeline temporal payload codec'),
  /** The key's fingerprint: payloads name it in their `encryption-key-id` metadata. */
  codecKeyId: z.string().regex(/^[0-9a-f]{16}$/),
  seq: z.number().int().positive(),
  /** The master key that was current when this codec key was made (a rotation makes the next one). */
  createdUnder: z.string(),
  provider: z.enum(KEY_PROVIDERS),
  keyId: z.string(),
  wrappedKey: z.string(),
  createdAt: z.string(),
  rewrappedAt: z.string().optional(),
  previousKeyIds: z.array(z.string()),
});
export type CodecKeyFile = z.infer<typeof CodecKeyFileSchema>;

const FILE_NAME = /^key-(\d{4,})\.json$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function codecKeyDir(backupDir: string): string {
  return path.join(backupDir, 'codec');
}

function codecKeyFile(backupDir: string, seq: number): string {
  return path.join(codecKeyDir(backupDir), `key-${String(seq).padStart(4, '0')}.json`);
}

/** What a codec key's wrapping is bound to. No database name holds ':', so no backup's data key has this context. */
export function codecKeyContext(seq: number): EncryptionContext {
  return { database: 'lifeline:codec', backupId: `codec-key-${seq}` };
}

export function codecKeyId(key: Buffer): string {
  return createHmac('sha256', key).update('lifeline/codec-key-id').digest('hex').slice(0, 16);
}

/** An unwrapped codec key, usable only through seal()/open(). */
export class CodecKey {
  readonly id: string;
  private readonly key: Buffer;

  /** Keeps a copy: the caller zeroes its buffer. */
  constructor(key: Buffer) {
    if (key.length !== 32) throw new RangeError('a codec key is 32 bytes');
    this.key = Buffer.from(key);
    this.id = codecKeyId(key);
  }

  /** IV (12 bytes) | ciphertext | GCM tag (16 bytes). */
  seal(plaintext: Uint8Array, aad: Buffer): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(aad);
    return Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  }

  /** Throws when the tag does not check (changed bytes, another key, other associated data). */
  open(sealed: Uint8Array, aad: Buffer): Buffer {
    const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (bytes.length < IV_BYTES + TAG_BYTES) throw new Error(`${bytes.length} bytes is shorter than an IV and a tag`);
    const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, IV_BYTES));
    decipher.setAAD(aad);
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
  }
}

/** Where the codec finds its keys: the current one (to encode) and any by id (to decode). */
export interface CodecKeySource {
  current(): Promise<CodecKey>;
  byId(id: string): Promise<CodecKey>;
}

/**
 * Keys this process has unwrapped, by id. The id is a fingerprint of the key, so a key found here
 * under an id is that key whichever repository named it (a test process runs workers of several
 * configurations; a production process has one).
 */
const unwrapped = new Map<string, CodecKey>();

/** One store per repository and key configuration in a process, so a rotation's new key is seen by the codec at once. */
const stores = new Map<string, CodecKeyStore>();

/** Forgets every unwrapped codec key and store (tests: as a new process would start). */
export function forgetCodecKeys(): void {
  unwrapped.clear();
  stores.clear();
}

export class CodecKeyUnknown extends LifelineError {
  constructor(id: string, dir: string) {
    super('CodecKeyUnknown', `a Temporal payload is encrypted with codec key ${id}, which is not among the codec keys in ${dir}`, {
      hint: `the payload was written by a Lifeline with another repository or key provider: point BACKUP_DIR (its codec/ folder holds key ${id}) and the key file or KMS key at those of the installation that wrote it, or restore ${dir} from a copy of the repository`,
      details: { codecKeyId: id, dir },
    });
  }
}

const refusedKey = (file: string, cause: unknown) =>
  new LifelineError('CodecKeyUnavailable', `cannot open the payload codec key ${file}: ${(cause as Error).message}`, {
    retryable: true,
    hint: 'the codec key is wrapped by the master key (key file or KMS) that was current when it was made or last re-wrapped: make that key readable again (check BACKUP_ENCRYPTION_KEY / BACKUP_KMS_KEY_ID and its keyring), then retry',
    cause,
  });

/** How often a long-running process looks for a newer codec key (another process's rotation). */
const RELIST_MS = 60_000;

export class CodecKeyStore implements CodecKeySource {
  readonly dir: string;
  private keyringCache?: Promise<Keyring>;
  private listed?: { at: number; records: CodecKeyFile[] };
  private currentKey?: CodecKey;
  private opening?: Promise<CodecKey>;

  constructor(
    readonly backupDir: string,
    private readonly makeKeyring: () => Promise<Keyring>,
  ) {
    this.dir = codecKeyDir(backupDir);
  }

  /** Made on the first key to open or make: a process that never touches a payload loads no KMS client. */
  private keyring(): Promise<Keyring> {
    return (this.keyringCache ??= this.makeKeyring());
  }

  /** The key files, oldest first (by number). */
  async records(): Promise<CodecKeyFile[]> {
    if (!(await checkDir(this.backupDir, this.dir))) return [];
    const names = (await fs.readdir(this.dir)).filter((n) => FILE_NAME.test(n));
    const records: CodecKeyFile[] = [];
    for (const name of names) {
      const file = path.join(this.dir, name);
      const body = await readFile(this.backupDir, file);
      if (!body) continue;
      let parsed: ReturnType<typeof CodecKeyFileSchema.safeParse>;
      try {
        parsed = CodecKeyFileSchema.safeParse(JSON.parse(body.toString('utf8')));
      } catch {
        parsed = { success: false } as typeof parsed;
      }
      if (!parsed.success || parsed.data.seq !== Number(FILE_NAME.exec(name)![1])) {
        throw new IntegrityError(`payload codec key file ${file} is malformed`, 'restore the codec/ folder from a copy of the repository');
      }
      records.push(parsed.data);
    }
    return records.sort((a, b) => a.seq - b.seq);
  }

  private async list(fresh: boolean): Promise<CodecKeyFile[]> {
    if (!fresh && this.listed && Date.now() - this.listed.at < RELIST_MS) return this.listed.records;
    let records: CodecKeyFile[];
    try {
      records = await this.records();
    } catch (err) {
      if (err instanceof LifelineError) throw err;
      throw new LifelineError('CodecKeysUnreadable', `cannot read the payload codec keys in ${this.dir}: ${(err as Error).message}`, {
        retryable: true,
        hint: 'every process that talks to Temporal for this installation (worker, CLI, codec server) reads BACKUP_DIR/codec/: run it as a user that can, with the same BACKUP_DIR as the worker',
        cause: err,
      });
    }
    this.listed = { at: Date.now(), records };
    return records;
  }

  /** The key of a record: from this process's cache, else unwrapped (and checked against its id). */
  private async open(record: CodecKeyFile): Promise<CodecKey> {
    const known = unwrapped.get(record.codecKeyId);
    if (known) return known;
    const file = codecKeyFile(this.backupDir, record.seq);
    let plaintext: Buffer;
    try {
      plaintext = await (await this.keyring()).unwrap(wrappingOf(record), codecKeyContext(record.seq));
    } catch (err) {
      throw refusedKey(file, err);
    }
    try {
      const key = new CodecKey(plaintext);
      if (key.id !== record.codecKeyId) {
        throw new IntegrityError(`payload codec key file ${file} was altered: its key opens to ${key.id}, not the ${record.codecKeyId} it names`, 'restore the codec/ folder from a copy of the repository');
      }
      unwrapped.set(key.id, key);
      return key;
    } finally {
      plaintext.fill(0);
    }
  }

  /** The key new payloads are encrypted with: the newest, made on first use. */
  async current(): Promise<CodecKey> {
    const stale = !this.listed || Date.now() - this.listed.at >= RELIST_MS;
    if (this.currentKey && !stale) return this.currentKey;
    // Payloads encoded at once while the key is being opened (or made) wait for the one look.
    return (this.opening ??= this.openCurrent().finally(() => (this.opening = undefined)));
  }

  private async openCurrent(): Promise<CodecKey> {
    let records = await this.list(true);
    if (records.length === 0) {
      await this.add(1);
      records = await this.list(true);
    }
    this.currentKey = await this.open(records[records.length - 1]!);
    return this.currentKey;
  }

  async byId(id: string): Promise<CodecKey> {
    const known = unwrapped.get(id);
    if (known) return known;
    // A key made after this process last looked (a rotation elsewhere): look again.
    for (const fresh of [false, true]) {
      const record = (await this.list(fresh)).find((r) => r.codecKeyId === id);
      if (record) return this.open(record);
    }
    throw new CodecKeyUnknown(id, this.dir);
  }

  /** Makes key number `seq` under the current master key; false when another process made it first. */
  private async add(seq: number): Promise<boolean> {
    const file = codecKeyFile(this.backupDir, seq);
    const context = codecKeyContext(seq);
    let generated;
    try {
      generated = await (await this.keyring()).current.generateDataKey(context);
    } catch (err) {
      throw refusedKey(file, err);
    }
    try {
      const key = new CodecKey(generated.plaintext);
      const record = newKeyRecord(key, seq, generated);
      // link(): never replaces a key another process made at the same number; that one is used.
      const made = await writeFileAtomically(this.backupDir, file, JSON.stringify(record, null, 2) + '\n', true);
      if (made) unwrapped.set(key.id, key);
      return made;
    } finally {
      generated.plaintext.fill(0);
    }
  }

  /**
   * After a master key rotation (`masterKeyId` is the new key): every codec key is re-wrapped
   * under it (opened again and checked before its file is replaced), then a new codec key is made
   * under it and becomes the current one. Idempotent: a retry finds its work done.
   */
  async rotate(masterKeyId: string): Promise<{ added?: string; rewrapped: number }> {
    const records = await this.list(true);
    const keyring = await this.keyring();
    let rewrapped = 0;
    for (const record of records) {
      if (record.keyId === masterKeyId) continue;
      const key = await this.open(record);
      const wrapping = await rewrapChecked(keyring, record, codecKeyContext(record.seq), `payload codec key ${key.id}`, (opened) => codecKeyId(opened) === key.id);
      const next: CodecKeyFile = { ...record, ...wrapping, rewrappedAt: new Date().toISOString(), previousKeyIds: [...record.previousKeyIds, record.keyId] };
      await writeFileAtomically(this.backupDir, codecKeyFile(this.backupDir, record.seq), JSON.stringify(next, null, 2) + '\n');
      rewrapped++;
    }
    const newest = records[records.length - 1];
    let added: string | undefined;
    if (!newest || newest.createdUnder !== masterKeyId) {
      const seq = (newest?.seq ?? 0) + 1;
      if (await this.add(seq)) added = (await this.list(true)).find((r) => r.seq === seq)?.codecKeyId;
    }
    this.listed = undefined;
    this.currentKey = undefined;
    return { ...(added && { added }), rewrapped };
  }
}


/** The file of a codec key just made (or imported) under the master key that wrapped it. */
function newKeyRecord(key: CodecKey, seq: number, wrapping: WrappedDataKey): CodecKeyFile {
  return {
    version: 1,
    purpose: 'lifeline temporal payload codec',
    codecKeyId: key.id,
    seq,
    createdUnder: wrapping.keyId,
    ...wrappingOf(wrapping),
    createdAt: new Date().toISOString(),
    previousKeyIds: [],
  };
}

export function codecKeysFor(config: LifelineConfig): CodecKeyStore {
  const id = JSON.stringify([config.backupDir, config.encryption.keyFile, config.encryption.kms.keyId ?? null, config.encryption.kms.endpoint ?? null]);
  let store = stores.get(id);
  if (!store) {
    store = new CodecKeyStore(config.backupDir, async () => (await import('./keys')).keyringFor(config));
    stores.set(id, store);
  }
  return store;
}

/** Fixed keys (the replay tests' committed fixture): the first is current. */
export function fixedCodecKeys(keys: Buffer[]): CodecKeySource {
  const opened = keys.map((k) => new CodecKey(k));
  return {
    current: async () => opened[0]!,
    byId: async (id) => {
      const key = opened.find((k) => k.id === id);
      if (!key) throw new CodecKeyUnknown(id, 'the fixed codec keys');
      return key;
    },
  };
}

/**
 * Makes `plaintext` the repository's first codec key, wrapped by the configured key provider
 * (recording replay histories with the committed fixture key). Refused when the repository has one.
 */
export async function importCodecKey(config: LifelineConfig, plaintext: Buffer): Promise<string> {
  const store = codecKeysFor(config);
  if ((await store.records()).length > 0) throw new LifelineError('CodecKeyExists', `${store.dir} already holds codec keys`);
  const keyring = (await import('./keys')).keyringFor(config);
  const wrapping = await keyring.current.wrapDataKey(plaintext, codecKeyContext(1));
  const key = new CodecKey(plaintext);
  await writeFileAtomically(config.backupDir, codecKeyFile(config.backupDir, 1), JSON.stringify(newKeyRecord(key, 1, wrapping), null, 2) + '\n', true);
  return key.id;
}
