import { IntegrityError } from '../../errors';
import type { EncryptionContext, Keyring, WrappedDataKey } from './index';

/** The wrapping fields of a key file that keeps one wrapped key (audit key, codec keys). */
export function wrappingOf(record: WrappedDataKey): WrappedDataKey {
  return { provider: record.provider, keyId: record.keyId, wrappedKey: record.wrappedKey };
}

/**
 * A master key rotation's step for a key kept wrapped in a file: the key is wrapped again under the
 * current master key, and the new wrapping is opened and checked (`sameKey`) before it is returned,
 * so a file is only ever replaced by one proven to hold the same key.
 */
export async function rewrapChecked(
  keyring: Keyring,
  wrapped: WrappedDataKey,
  context: EncryptionContext,
  what: string,
  sameKey: (opened: Buffer) => boolean,
): Promise<WrappedDataKey> {
  const plaintext = await keyring.unwrap(wrappingOf(wrapped), context);
  let check: Buffer | undefined;
  try {
    const rewrapped = await keyring.current.wrapDataKey(plaintext, context);
    check = await keyring.unwrap(rewrapped, context);
    if (!sameKey(check)) throw new IntegrityError(`the re-wrapped ${what} does not open to the same key`, 'run `lifeline keys rotate` again');
    return rewrapped;
  } finally {
    plaintext.fill(0);
    check?.fill(0);
  }
}
