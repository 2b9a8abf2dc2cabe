/**
 * The failure converter of every client, worker and workflow bundle (`failureConverterPath`):
 * a failure's message and stack trace travel in its encoded attributes, a payload the codec
 * encrypts, so Temporal's store and the Web UI see "Encoded failure" instead of the text.
 * Loaded inside the workflow sandbox too: it imports nothing but @temporalio/common.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
