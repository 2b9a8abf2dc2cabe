import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { LifelineError, WrongKeyError } from '../../errors';
import { KEY_BYTES } from '../format';
import type { DataKey, EncryptionContext, KeyProvider, WrappedDataKey } from './key-provider';

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

/** Creates a new random master key file, mode 0600; never overwrites an existing file. */
export async function createKeyFile(file: string): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  const handle = await fs.open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600).catch((err) => {
    if (err.code === 'EEXIST') {
      throw new LifelineError('KeyExists', `key file ${file} already exists; refusing to overwrite it`, {
        hint: 'backups wrapped with it would become unreadable; choose another path or keep the existing key',
      });
    }
    throw err;
  });
  try {
    await handle.writeFile(KEY_FILE_HEADER + key.toString('base64') + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  return localKeyId(key);
}

function aad(context: EncryptionContext): Buffer {
  return Buffer.from(JSON.stringify({ database: context.database, backupId: context.backupId }));
}

/** Wraps data keys with AES-256-GCM under a master key kept in a local file. */
export class LocalKeyFileProvider implements KeyProvider {
  readonly kind = 'local';
  private key?: Buffer;

  constructor(private readonly file: string) {}

  private async masterKey(): Promise<Buffer> {
    if (this.key) return this.key;
    let text: string;
    try {
      const stat = await fs.stat(this.file);
      if ((stat.mode & 0o077) !== 0) {
        throw new LifelineError('KeyInvalid', `key file ${this.file} is readable by other users (mode ${(stat.mode & 0o777).toString(8)})`, {
          hint: `run: chmod 600 ${this.file}`,
        });
      }
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if (err instanceof LifelineError) throw err;
      throw new LifelineError('KeyInvalid', `cannot read key file ${this.file}: ${(err as Error).message}`, {
        hint: 'create one with `lifeline keys init`, or set BACKUP_ENCRYPTION_KEY to the key file path',
        cause: err,
      });
    }
    this.key = parseKeyFile(text, this.file);
    return this.key;
  }

  async currentKeyId(): Promise<string> {
    return localKeyId(await this.masterKey());
  }

  async generateDataKey(context: EncryptionContext): Promise<DataKey> {
    const master = await this.masterKey();
    const plaintext = randomBytes(KEY_BYTES);
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', master, nonce);
    cipher.setAAD(aad(context));
    const sealed = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return { plaintext, keyId: localKeyId(master), wrappedKey: sealed.toString('base64') };
  }

  async unwrapDataKey(wrapped: WrappedDataKey, context: EncryptionContext): Promise<Buffer> {
    const master = await this.masterKey();
    const mine = localKeyId(master);
    if (wrapped.keyId !== mine) {
      throw new WrongKeyError(
        `backup ${context.backupId} was encrypted under key ${wrapped.keyId}, but key file ${this.file} holds ${mine}`,
        'set BACKUP_ENCRYPTION_KEY to the key file with that id',
      );
    }
    const sealed = Buffer.from(wrapped.wrappedKey, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', master, sealed.subarray(0, 12));
    decipher.setAAD(aad(context));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
    } catch {
      throw new WrongKeyError(
        `the data key of backup ${context.backupId} does not open under ${mine}: its manifest was altered or belongs to another backup`,
      );
    }
  }
}
