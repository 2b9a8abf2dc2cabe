import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ListResourceTagsCommand,
  UpdateAliasCommand,
} from '@aws-sdk/client-kms';
import type { KmsConfig } from '../../config/config';
import { LifelineError, WrongKeyError } from '../../errors';
import { quietAwsSdk } from '../../storage/s3';
import { explainTimeouts, requestHandlerOptions } from '../../storage/network-timeouts';
import type { DataKey, EncryptionContext, KeyProvider, RotationResult, WrappedDataKey } from './key-provider';
import { assertKeyId, kmsKeyListed, kmsKeyPlace } from './key-ids';

const NETWORK = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|socket hang up/i;
const ROTATION_TAG = 'lifeline-rotation';
const PREVIOUS_TAG = 'lifeline-previous-key';

/** What KMS binds a data key to; Decrypt with any other context fails. */
function kmsContext(context: EncryptionContext): Record<string, string> {
  return { application: 'lifeline', database: context.database, backupId: context.backupId };
}

/**
 * A KMS failure as a LifelineError naming the key: access denied, a disabled, missing or
 * deletion-pending key and a foreign ciphertext fail at once; throttling and network errors retry.
 */
export function classifyKmsError(err: unknown, what: string, keyId: string): LifelineError {
  if (err instanceof LifelineError) return err;
  const e = err as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = e?.name ?? 'Error';
  const detail = `${what} with KMS key ${keyId} failed: ${name}${e?.message && e.message !== name ? ` (${e.message})` : ''}`;
  switch (name) {
    case 'AccessDeniedException':
      return new LifelineError('KeyAccessDenied', detail, { cause: err, hint: `check that the worker's AWS identity may use ${keyId} (key policy and IAM: kms:GenerateDataKey, kms:Decrypt, kms:Encrypt)` });
    case 'DisabledException':
    case 'KMSInvalidStateException':
      return new LifelineError('KeyDisabled', detail, { cause: err, hint: `enable ${keyId} (aws kms enable-key) or cancel its deletion; backups wrapped by it cannot be opened until then` });
    case 'NotFoundException':
      return new LifelineError('KeyNotFound', detail, { cause: err, hint: 'check BACKUP_KMS_KEY_ID, the region (BACKUP_KMS_REGION) and the account' });
    case 'InvalidCiphertextException':
    case 'IncorrectKeyException':
      return new WrongKeyError(
        `${detail}: the wrapped key does not belong to this database and backup id (encryption context differs), or the manifest was altered`,
        'restore the backup with its own manifest; a manifest copied from another backup cannot open this one',
      );
    case 'ThrottlingException':
    case 'KMSInternalException':
    case 'DependencyTimeoutException':
      return new LifelineError('KeyServiceUnavailable', detail, { cause: err, retryable: true });
  }
  if (name === 'TimeoutError' || NETWORK.test(`${e?.code ?? ''} ${e?.message ?? ''}`) || (e?.$metadata?.httpStatusCode ?? 0) >= 500) {
    return new LifelineError('KeyServiceUnavailable', detail, { cause: err, retryable: true, hint: 'KMS is unreachable; Lifeline retries' });
  }
  return new LifelineError('KeyServiceError', detail, { cause: err });
}

/** Data keys from AWS KMS (GenerateDataKey, AES_256), bound to database and backup id. */
export class KmsKeyProvider implements KeyProvider {
  readonly kind = 'kms';
  readonly client: KMSClient;

  /** Without `keyId` it only opens existing backups (each wrapping names its key). */
  constructor(private readonly config: KmsConfig) {
    quietAwsSdk();
    this.client = new KMSClient({ endpoint: config.endpoint, region: config.region, maxAttempts: 3, requestHandler: requestHandlerOptions(config.network) });
    explainTimeouts(this.client, config.endpoint ?? `the KMS endpoint of ${config.region}`, config.network);
  }

  private keyId(): string {
    if (!this.config.keyId) {
      throw new LifelineError('KeyNotConfigured', 'no KMS key is configured for new backups', { hint: 'set BACKUP_KMS_KEY_ID (a key id, ARN or alias/NAME)' });
    }
    return this.config.keyId;
  }

  private async call<T>(what: string, keyId: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw classifyKmsError(err, what, keyId);
    }
  }

  async currentKeyId(): Promise<string> {
    const keyId = this.keyId();
    const described = await this.call('describing the key', keyId, () => this.client.send(new DescribeKeyCommand({ KeyId: keyId })));
    const meta = described.KeyMetadata!;
    if (meta.KeyState !== 'Enabled') {
      throw new LifelineError('KeyDisabled', `KMS key ${meta.Arn} is ${meta.KeyState}`, { hint: `enable it (aws kms enable-key --key-id ${meta.KeyId}) or point BACKUP_KMS_KEY_ID at an enabled key` });
    }
    return meta.Arn!;
  }

  async generateDataKey(context: EncryptionContext): Promise<DataKey> {
    const keyId = this.keyId();
    const out = await this.call('generating a data key', keyId, () =>
      this.client.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: kmsContext(context) })),
    );
    return {
      plaintext: Buffer.from(out.Plaintext!),
      provider: 'kms',
      keyId: out.KeyId!,
      wrappedKey: Buffer.from(out.CiphertextBlob!).toString('base64'),
    };
  }

  async wrapDataKey(plaintext: Buffer, context: EncryptionContext): Promise<WrappedDataKey> {
    const keyId = this.keyId();
    const out = await this.call('wrapping a data key', keyId, () =>
      this.client.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: kmsContext(context) })),
    );
    return { provider: 'kms', keyId: out.KeyId!, wrappedKey: Buffer.from(out.CiphertextBlob!).toString('base64') };
  }

  /** Account and region of the configured key; an alias or bare id is asked of KMS once. */
  private configuredPlace(): Promise<{ region: string; account: string } | undefined> {
    const keyId = this.config.keyId;
    if (!keyId) return Promise.resolve(undefined);
    const direct = kmsKeyPlace(keyId);
    if (direct) return Promise.resolve(direct);
    this.place ??= this.call('describing the key', keyId, () => this.client.send(new DescribeKeyCommand({ KeyId: keyId })))
      .then((out) => kmsKeyPlace(out.KeyMetadata?.Arn ?? ''))
      .catch((err) => {
        this.place = undefined;
        throw err;
      });
    return this.place;
  }

  private place?: Promise<{ region: string; account: string } | undefined>;

  /**
   * A wrapped key names the KMS key to decrypt with, and it comes from a file in the repository:
   * only a key in the configured key's account and region, or one listed in
   * BACKUP_KMS_ALLOWED_KEYS, is ever asked.
   */
  async assertAllowed(keyId: string): Promise<void> {
    assertKeyId('kms', keyId);
    const listed = this.config.allowedKeyIds ?? [];
    if (kmsKeyListed(keyId, listed)) return;
    const place = await this.configuredPlace();
    const asked = kmsKeyPlace(keyId)!;
    if (place && place.account === asked.account && place.region === asked.region) return;
    const allowed = [
      place ? `keys in account ${place.account}, region ${place.region} (those of BACKUP_KMS_KEY_ID=${this.config.keyId})` : 'no account by default (BACKUP_KMS_KEY_ID is not set)',
      listed.length ? `BACKUP_KMS_ALLOWED_KEYS: ${listed.join(', ')}` : 'BACKUP_KMS_ALLOWED_KEYS is empty',
    ];
    throw new LifelineError('KeyNotAllowed', `refusing KMS key ${keyId}: allowed are ${allowed.join('; ')}`, {
      hint: `if ${keyId} is your key, add its ARN (or arn:aws:kms:${asked.region}:${asked.account}:key/*) to BACKUP_KMS_ALLOWED_KEYS; otherwise the backup's manifest or key envelope was altered`,
    });
  }

  async unwrapDataKey(wrapped: WrappedDataKey, context: EncryptionContext): Promise<Buffer> {
    await this.assertAllowed(wrapped.keyId);
    const out = await this.call(`opening the data key of backup ${context.backupId}`, wrapped.keyId, () =>
      this.client.send(
        new DecryptCommand({
          KeyId: wrapped.keyId,
          CiphertextBlob: Buffer.from(wrapped.wrappedKey, 'base64'),
          EncryptionContext: kmsContext(context),
        }),
      ),
    );
    return Buffer.from(out.Plaintext!);
  }

  /**
   * A new KMS key, tagged with the rotation id, becomes the target of the configured alias. A retry
   * finds the alias already on the key this rotation made and returns it.
   */
  async rotate(rotationId: string): Promise<RotationResult> {
    const alias = this.keyId();
    if (!alias.startsWith('alias/')) {
      throw new LifelineError('KeyRotationUnsupported', `BACKUP_KMS_KEY_ID=${alias} is a key, not an alias: rotation points an alias at a new key`, {
        hint: 'create an alias for the key (aws kms create-alias) and set BACKUP_KMS_KEY_ID=alias/NAME',
      });
    }
    const current = (await this.call('describing the key', alias, () => this.client.send(new DescribeKeyCommand({ KeyId: alias })))).KeyMetadata!;
    const tags = await this.call('reading the tags of', current.Arn!, () => this.client.send(new ListResourceTagsCommand({ KeyId: current.KeyId! })));
    const tag = (name: string) => tags.Tags?.find((t) => t.TagKey === name)?.TagValue;
    if (tag(ROTATION_TAG) === rotationId) return { previousKeyId: tag(PREVIOUS_TAG) ?? current.Arn!, keyId: current.Arn! };
    const created = await this.call('creating a new key for', alias, () =>
      this.client.send(
        new CreateKeyCommand({
          Description: `Lifeline master key (rotation ${rotationId}; replaces ${current.Arn})`,
          KeySpec: 'SYMMETRIC_DEFAULT',
          KeyUsage: 'ENCRYPT_DECRYPT',
          Tags: [
            { TagKey: ROTATION_TAG, TagValue: rotationId },
            { TagKey: PREVIOUS_TAG, TagValue: current.Arn! },
          ],
        }),
      ),
    );
    const next = created.KeyMetadata!;
    await this.call('pointing the alias at', next.Arn!, () => this.client.send(new UpdateAliasCommand({ AliasName: alias, TargetKeyId: next.KeyId! })));
    return { previousKeyId: current.Arn!, keyId: next.Arn! };
  }
}
