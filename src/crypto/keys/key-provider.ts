/**
 * Envelope encryption: each backup gets its own random 256-bit data key, stored only in wrapped
 * (encrypted) form beside the backup. A key provider holds the master key that wraps it. The
 * encryption context binds a wrapped key to one database and backup id.
 */
export interface EncryptionContext {
  database: string;
  backupId: string;
}

export const KEY_PROVIDERS = ['local', 'kms'] as const;
export type KeyProviderKind = (typeof KEY_PROVIDERS)[number];

export interface WrappedDataKey {
  /** Which kind of provider wrapped it. */
  provider: KeyProviderKind;
  /** Which master key wrapped it (a local key id, or a KMS key ARN). */
  keyId: string;
  /** Base64 of the provider's wrapped form. Not a secret: useless without the master key. */
  wrappedKey: string;
}

export interface DataKey extends WrappedDataKey {
  plaintext: Buffer;
}

export interface RotationResult {
  previousKeyId: string;
  keyId: string;
}

export interface KeyProvider {
  readonly kind: KeyProviderKind;
  /** The key id new backups are wrapped with. */
  currentKeyId(): Promise<string>;
  generateDataKey(context: EncryptionContext): Promise<DataKey>;
  /** Wraps an existing data key under the current master key (key rotation). */
  wrapDataKey(plaintext: Buffer, context: EncryptionContext): Promise<WrappedDataKey>;
  unwrapDataKey(wrapped: WrappedDataKey, context: EncryptionContext): Promise<Buffer>;
  /**
   * Makes a new master key the current one; the old one stays usable for unwrapping. Idempotent
   * per `rotationId`: a retry returns the key that rotation already made.
   */
  rotate(rotationId: string): Promise<RotationResult>;
}
