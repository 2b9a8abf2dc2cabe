import { LifelineError } from '../../errors';
import type { KeyProviderKind } from './key-provider';

/**
 * What a key id in a manifest, a key envelope or a key file may look like. Key ids come from files
 * in the repository, which Lifeline does not trust: a local id becomes part of a file path and a KMS
 * id names the key Lifeline asks to decrypt with, so anything but a plain id is refused.
 */
export const LOCAL_KEY_ID = /^local:[0-9a-f]{16}$/;

/** A KMS key ARN, as GenerateDataKey and Encrypt return it (never an alias: an alias moves). */
export const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;

const SHAPES: Record<KeyProviderKind, { pattern: RegExp; allowed: string }> = {
  local: { pattern: LOCAL_KEY_ID, allowed: '"local:" and 16 hex digits, e.g. local:0123456789abcdef' },
  kms: { pattern: KMS_KEY_ARN, allowed: 'a KMS key ARN, e.g. arn:aws:kms:eu-west-1:111122223333:key/<uuid>' },
};

/** Why a key id is not a plain id of this provider, or undefined if it is one. */
export function keyIdProblem(provider: KeyProviderKind, keyId: string): string | undefined {
  const shape = SHAPES[provider];
  if (!shape) return `unknown key provider "${String(provider)}"`;
  return shape.pattern.test(keyId) ? undefined : `${JSON.stringify(keyId)} is not a ${provider} key id: expected ${shape.allowed}`;
}

export function assertKeyId(provider: KeyProviderKind, keyId: string): void {
  const problem = keyIdProblem(provider, keyId);
  if (problem) {
    throw new LifelineError('KeyIdInvalid', `refusing key id ${problem}`, {
      hint: 'the backup\'s manifest or key envelope was altered or damaged; restore another backup, or restore the file from a copy',
    });
  }
}

/** An entry of BACKUP_KMS_ALLOWED_KEYS: a key ARN, or every key of one account and region (`…:key/*`). */
export const KMS_ALLOWED_KEY = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/(\*|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;

export function kmsKeyListed(keyId: string, allowed: string[]): boolean {
  return allowed.some((entry) => entry === keyId || (entry.endsWith(':key/*') && keyId.startsWith(entry.slice(0, -1))));
}

/** Account and region of a KMS key ARN. */
export function kmsKeyPlace(arn: string): { region: string; account: string } | undefined {
  const m = KMS_KEY_ARN.exec(arn);
  return m ? { region: m[1]!, account: m[2]! } : undefined;
}
