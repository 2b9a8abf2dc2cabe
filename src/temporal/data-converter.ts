import type { DataConverter, LoadedDataConverter, Payload } from '@temporalio/common';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import type { LifelineConfig } from '../config/config';
import { codecKeysFor, type CodecKeySource } from '../crypto/codec-keys';
import { LifelineCodec } from './codec';

/**
 * The module exporting the failure converter (encodeCommonAttributes): given by path, because a
 * worker also bundles it into the workflow code (scripts/bundle-workflows.ts for a build).
 * Resolves to failure-converter.ts from source and to failure-converter.js in a build.
 */
export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

/** A data converter whose codec takes its keys from `keys` (the replay tests' fixed keys). */
export function dataConverterWith(keys: CodecKeySource): DataConverter {
  return { payloadCodecs: [new LifelineCodec(keys)], failureConverterPath: FAILURE_CONVERTER_PATH };
}

/**
 * The data converter of every client, worker and replayer: payloads encrypted by Lifeline's codec
 * (issue 12 item 2) under the installation's codec keys (wrapped by its key provider in
 * `<BACKUP_DIR>/codec/`, unwrapped on the first payload), failure messages and stacks encoded too.
 */
export function dataConverterFor(config: LifelineConfig): DataConverter {
  return dataConverterWith(codecKeysFor(config));
}

/** A payload read from a raw history or description (fetchHistory, describe().raw), decoded as the client decodes results. */
export async function decodePayload<T>(client: { options: { loadedDataConverter: LoadedDataConverter } }, payload: Payload | null | undefined): Promise<T | undefined> {
  if (!payload) return undefined;
  return decodeFromPayloadsAtIndex<T>(client.options.loadedDataConverter, 0, [payload]);
}
