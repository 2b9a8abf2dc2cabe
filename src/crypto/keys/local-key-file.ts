import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { constants, existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { LifelineError, WrongKeyError } from '../../errors';
import { KEY_BYTES } from '../format';
import { registerSecret } from '../../security/redact';
import type { DataKey, EncryptionContext, KeyProvider, RotationResult, WrappedDataKey } from './key-provider';
import { assertKeyId } from './key-ids';

const KEY_FILE_HEADER =
  '# Lifeline master key (AES-256, base64). Without it no backup it wrapped can be decrypted:\n' +
  '# keep a copy somewhere other than the backups.\n';

/** The key file is the master key in base64 (or hex); lines starting with # are comments. */
export function parseKeyFile(text: string, file: string): Buffer {
  const body = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .join('');
  const key = /^[0-9a-fA-F]{64}$/.test(body) ? Buffer.from(body, 'hex') : Buffer.from(body, 'base64');
  if (key.length !== KEY_BYTES || (!/^[0-9a-fA-F]{64}$/.test(body) && key.toString('base64') !== body)) {
    throw new LifelineError('KeyInvalid', `key file ${file} does not hold a 256-bit key in base64 or hex`, {
      hint: 'create one with `lifeline keys init`, or point BACKUP_ENCRYPTION_KEY at the right file',
    });
  }
  return key;
}

export function localKeyId(key: Buffer): string {
  return 'local:' + createHash('sha256').update('lifeline/key-id').update(key).digest('hex').slice(0, 16);
}

/** Writes a new key file, mode 0600; never overwrites an existing file. */
async function writeKeyFile(file: string, key: Buffer, note = ''): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const handle = await fs.open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600).catch((err) => {
    if (err.code === 'EEXIST') {
      throw new LifelineError('KeyExists', `key file ${file} already exists; refusing to overwrite it`, {
        hint: 'backups wrapped with it would become unreadable; choose another path or keep the existing key',
      });
    }
    throw err;
  });
  try {
    await handle.writeFile(KEY_FILE_HEADER + note + key.toString('base64') + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates a new random master key file, mode 0600; never overwrites an existing file. */
export async function createKeyFile(file: string): Promise<string> {
  const key = randomBytes(KEY_BYTES);
  await writeKeyFile(file, key);
  return localKeyId(key);
}

function aad(context: EncryptionContext): Buffer {
  return Buffer.from(JSON.stringify({ database: context.database, backupId: context.backupId }));
}

/** Where earlier master keys are kept after a rotation: `keyring/` beside the key file, one file per key id. */
export function keyringDir(keyFile: string): string {
  return path.join(path.dirname(keyFile), 'keyring');
}

/** The id becomes part of a path: only a plain id (never `local:../../x`) gets this far. */
function keyringFile(keyFile: string, keyId: string): string {
  assertKeyId('local', keyId);
  return path.join(keyringDir(keyFile), `${keyId.replace(':', '-')}.key`);
}

const ROTATION_NOTE = /^# rotation: (\S+) previous: (\S+)$/m;

async function readKeyFile(file: string): Promise<{ key: Buffer; text: string }> {
  let text: string;
  try {
    const stat = await fs.stat(file);
    if ((stat.mode & 0o077) !== 0) {
      throw new LifelineError('KeyInvalid', `key file ${file} is readable by other users (mode ${(stat.mode & 0o777).toString(8)})`, {
        hint: `run: chmod 600 ${file}`,
      });
    }
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof LifelineError) throw err;
    throw new LifelineError('KeyInvalid', `cannot read key file ${file}: ${(err as Error).message}`, {
      hint: 'create one with `lifeline keys init`, or set BACKUP_ENCRYPTION_KEY to the key file path',
      cause: err,
    });
  }
  const key = parseKeyFile(text, file);
  registerSecret(key.toString('base64'), key.toString('hex'));
  return { key, text };
}

/**
 * Wraps data keys with AES-256-GCM under a master key kept in a local file. After a rotation the
 * file holds the new key and earlier keys live on in `keyring/`, so old backups still open.
 */
export class LocalKeyFileProvider implements KeyProvider {
  readonly kind = 'local';

  constructor(private readonly file: string) {}

  private async masterKey(): Promise<Buffer> {
    return (await readKeyFile(this.file)).key;
  }

  /** The master key with this id: the current one, or one kept in the keyring by a rotation. */
  private async keyWithId(keyId: string, context: EncryptionContext): Promise<Buffer> {
    assertKeyId('local', keyId);
    const current = await this.masterKey();
    if (localKeyId(current) === keyId) return current;
    const kept = keyringFile(this.file, keyId);
    if (!existsSync(kept)) {
      throw new WrongKeyError(
        `backup ${context.backupId} was encrypted under key ${keyId}, but key file ${this.file} holds ${localKeyId(current)} and ${kept} does not exist`,
        'set BACKUP_ENCRYPTION_KEY to the key file with that id, or put that key file into the keyring folder',
      );
    }
    const { key } = await readKeyFile(kept);
    if (localKeyId(key) !== keyId) throw new WrongKeyError(`key file ${kept} does not hold key ${keyId}`);
    return key;
  }

  async currentKeyId(): Promise<string> {
    return localKeyId(await this.masterKey());
  }

  async generateDataKey(context: EncryptionContext): Promise<DataKey> {
    const plaintext = randomBytes(KEY_BYTES);
    return { plaintext, ...(await this.wrapDataKey(plaintext, context)) };
  }

  async wrapDataKey(plaintext: Buffer, context: EncryptionContext): Promise<WrappedDataKey> {
    const master = await this.masterKey();
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', master, nonce);
    cipher.setAAD(aad(context));
    const sealed = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return { provider: 'local', keyId: localKeyId(master), wrappedKey: sealed.toString('base64') };
  }

  async unwrapDataKey(wrapped: WrappedDataKey, context: EncryptionContext): Promise<Buffer> {
    const master = await this.keyWithId(wrapped.keyId, context);
    const sealed = Buffer.from(wrapped.wrappedKey, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', master, sealed.subarray(0, 12));
    decipher.setAAD(aad(context));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
    } catch {
      throw new WrongKeyError(
        `the data key of backup ${context.backupId} does not open under ${wrapped.keyId}: its manifest was altered or belongs to another backup`,
      );
    }
  }

  /**
   * Keeps the current key in the keyring, then writes the new key to the keyring and only then
   * swaps it into the key file (atomic rename): at every instant both keys exist on disk.
   */
  async rotate(rotationId: string): Promise<RotationResult> {
    const { key: current, text } = await readKeyFile(this.file);
    const done = ROTATION_NOTE.exec(text);
    if (done && done[1] === rotationId) return { previousKeyId: done[2]!, keyId: localKeyId(current) };
    const previousKeyId = localKeyId(current);
    await this.keep(current);
    const next = randomBytes(KEY_BYTES);
    await this.keep(next);
    const temp = `${this.file}.${randomBytes(6).toString('hex')}.partial`;
    try {
      await writeKeyFile(temp, next, `# rotation: ${rotationId} previous: ${previousKeyId}\n`);
      await fs.rename(temp, this.file);
    } finally {
      await fs.rm(temp, { force: true });
    }
    const dir = await fs.open(path.dirname(this.file), 'r');
    await dir.sync().finally(() => dir.close());
    return { previousKeyId, keyId: localKeyId(next) };
  }

  private async keep(key: Buffer): Promise<void> {
    const file = keyringFile(this.file, localKeyId(key));
    if (existsSync(file)) return;
    await writeKeyFile(file, key);
  }

  /** Key ids in the keyring folder (earlier master keys). */
  async keptKeyIds(): Promise<string[]> {
    const names = await fs.readdir(keyringDir(this.file)).catch(() => [] as string[]);
    return names.filter((n) => /^local-[0-9a-f]{16}\.key$/.test(n)).map((n) => n.replace(/^local-/, 'local:').replace(/\.key$/, ''));
  }
}
