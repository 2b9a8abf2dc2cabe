/**
 * Lifeline's encrypted file format, version 1: a STREAM construction (Hoang et al., 2015) over
 * AES-256-GCM, so that decryption streams in bounded memory and detects any change, reordering or
 * truncation of the data.
 *
 *   header  = magic "LIFELN" | version u8 = 1 | algorithm u8 = 1 (AES-256-GCM) | chunk size u32 BE
 *             | nonce prefix (7 random bytes) | key commitment (32 bytes)
 *   chunk i = AES-256-GCM(dataKey, nonce = prefix | i u32 BE | last u8, aad = header) | tag (16)
 *
 * Every chunk but the last holds exactly `chunk size` plaintext bytes; the last one is shorter (it may
 * be empty) and is marked in its nonce, so a file cut at a chunk boundary is detected. The key
 * commitment (HMAC-SHA256 of the header fields under the data key) tells a wrong key from damaged data.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { IntegrityError, WrongKeyError } from '../errors';

export const MAGIC = Buffer.from('LIFELN', 'ascii');
export const FORMAT_VERSION = 1;
export const ALGORITHM_AES_256_GCM = 1;
export const NONCE_PREFIX_BYTES = 7;
export const TAG_BYTES = 16;
export const KEY_BYTES = 32;
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
export const MIN_CHUNK_BYTES = 1024;
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
const FIELDS_BYTES = MAGIC.length + 1 + 1 + 4 + NONCE_PREFIX_BYTES;
const COMMITMENT_BYTES = 32;
export const HEADER_BYTES = FIELDS_BYTES + COMMITMENT_BYTES;
export const MAX_CHUNKS = 2 ** 32 - 1;

export interface Header {
  chunkBytes: number;
  noncePrefix: Buffer;
  /** The whole encoded header, used as associated data for every chunk. */
  raw: Buffer;
}

function commitment(dataKey: Buffer, fields: Buffer): Buffer {
  return createHmac('sha256', dataKey).update('lifeline/v1/key-commitment').update(fields).digest();
}

export function encodeHeader(dataKey: Buffer, chunkBytes: number, noncePrefix: Buffer): Header {
  if (chunkBytes < MIN_CHUNK_BYTES || chunkBytes > MAX_CHUNK_BYTES) {
    throw new RangeError(`chunk size ${chunkBytes} is outside ${MIN_CHUNK_BYTES}..${MAX_CHUNK_BYTES}`);
  }
  const fields = Buffer.alloc(FIELDS_BYTES);
  MAGIC.copy(fields, 0);
  fields.writeUInt8(FORMAT_VERSION, MAGIC.length);
  fields.writeUInt8(ALGORITHM_AES_256_GCM, MAGIC.length + 1);
  fields.writeUInt32BE(chunkBytes, MAGIC.length + 2);
  noncePrefix.copy(fields, MAGIC.length + 6);
  const raw = Buffer.concat([fields, commitment(dataKey, fields)]);
  return { chunkBytes, noncePrefix, raw };
}

/** Parses and checks a header; throws IntegrityError for a foreign file and WrongKeyError for the wrong key. */
export function decodeHeader(dataKey: Buffer, raw: Buffer): Header {
  if (raw.length < HEADER_BYTES) {
    throw new IntegrityError(`encrypted stream is ${raw.length} bytes, shorter than its ${HEADER_BYTES}-byte header`);
  }
  if (!raw.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new IntegrityError('not a Lifeline encrypted backup (bad magic bytes)');
  }
  const version = raw.readUInt8(MAGIC.length);
  if (version !== FORMAT_VERSION) {
    throw new IntegrityError(`unsupported encrypted format version ${version} (this build reads version ${FORMAT_VERSION})`,
      'upgrade Lifeline to a version that reads this format');
  }
  const algorithm = raw.readUInt8(MAGIC.length + 1);
  if (algorithm !== ALGORITHM_AES_256_GCM) {
    throw new IntegrityError(`unsupported cipher id ${algorithm} in encrypted header`);
  }
  const chunkBytes = raw.readUInt32BE(MAGIC.length + 2);
  if (chunkBytes < MIN_CHUNK_BYTES || chunkBytes > MAX_CHUNK_BYTES) {
    throw new IntegrityError(`chunk size ${chunkBytes} in encrypted header is outside ${MIN_CHUNK_BYTES}..${MAX_CHUNK_BYTES}`);
  }
  const fields = raw.subarray(0, FIELDS_BYTES);
  const stored = raw.subarray(FIELDS_BYTES, HEADER_BYTES);
  if (!timingSafeEqual(stored, commitment(dataKey, fields))) {
    throw new WrongKeyError('the data key does not match this backup (key commitment differs)');
  }
  const noncePrefix = Buffer.from(raw.subarray(MAGIC.length + 6, FIELDS_BYTES));
  return { chunkBytes, noncePrefix, raw: Buffer.from(raw.subarray(0, HEADER_BYTES)) };
}

export function chunkNonce(prefix: Buffer, index: number, last: boolean): Buffer {
  if (index > MAX_CHUNKS) throw new RangeError('too many chunks for one encrypted stream');
  const nonce = Buffer.alloc(12);
  prefix.copy(nonce, 0);
  nonce.writeUInt32BE(index, NONCE_PREFIX_BYTES);
  nonce.writeUInt8(last ? 1 : 0, 11);
  return nonce;
}
