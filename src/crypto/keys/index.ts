import type { LifelineConfig } from '../../config/config';
import { LifelineError } from '../../errors';
import type { EncryptionContext, KeyProvider, KeyProviderKind, WrappedDataKey } from './key-provider';
import type { KmsKeyProvider } from './kms';
import { LocalKeyFileProvider } from './local-key-file';

export type { DataKey, EncryptionContext, KeyProvider, KeyProviderKind, RotationResult, WrappedDataKey } from './key-provider';

/**
 * The keys of one installation: `current` wraps new backups (KMS when BACKUP_KMS_KEY_ID is set,
 * else the local key file); `unwrap` opens any backup with the kind of provider that wrapped it,
 * so switching providers never strands older backups.
 */
export interface Keyring {
  current: KeyProvider;
  provider(kind: KeyProviderKind): KeyProvider;
  unwrap(wrapped: WrappedDataKey, context: EncryptionContext): Promise<Buffer>;
}

export function keyringFor(config: LifelineConfig): Keyring {
  const local = new LocalKeyFileProvider(config.encryption.keyFile);
  const kms = config.encryption.kms;
  // One client per keyring: it also remembers the configured key's account and region (the allow-list).
  let kmsClient: KmsKeyProvider | undefined;
  // The AWS SDK's KMS client loads with the first use of KMS, not with every command that makes a keyring.
  const kmsProvider = () => (kmsClient ??= new (require('./kms') as typeof import('./kms')).KmsKeyProvider(kms));
  const provider = (kind: KeyProviderKind): KeyProvider => {
    if (kind === 'local') return local;
    if (kind === 'kms') return kmsProvider();
    throw new LifelineError('KeyInvalid', `unknown key provider "${String(kind)}" in a backup's key record`);
  };
  return {
    current: kms.keyId ? kmsProvider() : local,
    provider,
    unwrap: (wrapped, context) => provider(wrapped.provider).unwrapDataKey(wrapped, context),
  };
}

/** The provider configured for new backups. */
export function keyProviderFor(config: LifelineConfig): KeyProvider {
  return keyringFor(config).current;
}
