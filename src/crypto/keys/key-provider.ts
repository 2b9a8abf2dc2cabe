/**
 * Envelope encryption: each backup gets its own random 256-bit data key, stored only in wrapped
 * (encrypted) form in the backup's manifest. A key provider holds the master key that wraps it.
 * The encryption context binds a wrapped key to one database and backup id.
 */
export interface EncryptionContext {
  database: string;
  backupId: string;
}

export interface WrappedDataKey {
  /** Which master key wrapped it (a local key fingerprint, or a KMS key ARN). */
  keyId: string;
  /** Base64 of the provider's wrapped form. Not a secret: useless without the master key. */
  wrappedKey: string;
}

export interface DataKey extends WrappedDataKey {
  plaintext: Buffer;
}

export interface KeyProvider {
  /** 'local' or 'kms'. */
  readonly kind: string;
  /** The key id new backups are wrapped with. */
  currentKeyId(): Promise<string>;
  generateDataKey(context: EncryptionContext): Promise<DataKey>;
  unwrapDataKey(wrapped: WrappedDataKey, context: EncryptionContext): Promise<Buffer>;
}
