import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { CodecKeySource } from '../crypto/codec-keys';
import { LifelineError } from '../errors';

/**
 * Lifeline's payload codec: every payload sent to Temporal (inputs, results, heartbeat details,
 * query and update results, memos, failure attributes) is the AES-256-GCM encryption of the whole
 * serialized Payload, under the current codec key; the payload's metadata names the key, so older
 * histories decode after a rotation. A payload without that encoding (plain JSON given to
 * `temporal workflow start --input`) passes through decode unchanged. Runs outside the workflow
 * sandbox (client, worker, replayer, codec server).
 */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

const text = new TextEncoder();
const utf8 = new TextDecoder();

/** Binds the ciphertext to its key id and format: metadata moved onto another payload does not decode. */
const aad = (keyId: string) => Buffer.from(`lifeline/payload/v1\n${keyId}`);

export class PayloadUndecryptable extends LifelineError {
  constructor(keyId: string, reason: string) {
    super('PayloadUndecryptable', `a Temporal payload encrypted with codec key ${keyId} does not decrypt: ${reason}`, {
      hint: 'the payload was changed after it was written (in Temporal\'s store or on the way), or its key file in the repository\'s codec/ folder was replaced; check who can write them, and restore codec/ from a copy of the repository if it was replaced',
      details: { codecKeyId: keyId },
    });
  }
}

export class LifelineCodec implements PayloadCodec {
  constructor(private readonly keys: CodecKeySource) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    if (payloads.length === 0) return payloads;
    const key = await this.keys.current();
    return payloads.map((payload) => ({
      metadata: { encoding: text.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: text.encode(key.id) },
      data: key.seal(temporal.api.common.v1.Payload.encode(payload).finish(), aad(key.id)),
    }));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(
      payloads.map(async (payload) => {
        const encoding = payload.metadata?.encoding;
        if (!encoding || utf8.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
        const idBytes = payload.metadata?.[KEY_ID_METADATA];
        if (!idBytes) throw new PayloadUndecryptable('(none)', `its metadata has no ${KEY_ID_METADATA}`);
        const keyId = utf8.decode(idBytes);
        const key = await this.keys.byId(keyId);
        let plain: Buffer;
        try {
          plain = key.open(payload.data ?? new Uint8Array(), aad(keyId));
        } catch (err) {
          throw new PayloadUndecryptable(keyId, (err as Error).message);
        }
        return temporal.api.common.v1.Payload.decode(plain) as Payload;
      }),
    );
  }
}
