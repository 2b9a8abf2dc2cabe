import type { LifelineConfig } from '../../config/config';
import type { KeyProvider } from './key-provider';
import { LocalKeyFileProvider } from './local-key-file';

export type { DataKey, EncryptionContext, KeyProvider, WrappedDataKey } from './key-provider';

/** The provider configured for new backups (the KMS provider plugs in here). */
export function keyProviderFor(config: LifelineConfig): KeyProvider {
  return new LocalKeyFileProvider(config.encryption.keyFile);
}
