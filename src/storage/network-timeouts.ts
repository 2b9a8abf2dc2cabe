import type { KMSClient } from '@aws-sdk/client-kms';
import type { S3Client } from '@aws-sdk/client-s3';
import type { NetworkTimeouts } from '../config/config';

/** Defaults of BACKUP_CONNECT_TIMEOUT and BACKUP_REQUEST_TIMEOUT, for clients made without a configuration. */
export const DEFAULT_NETWORK_TIMEOUTS: NetworkTimeouts = { connectSeconds: 10, idleSeconds: 120 };

/**
 * The AWS SDK waits forever by default: a server that accepts the connection and never answers
 * would hang a step until its 12 h timeout. The idle timeout counts from the last byte either way,
 * so a long upload or download that keeps moving is never cut off.
 */
export function requestHandlerOptions(network: NetworkTimeouts = DEFAULT_NETWORK_TIMEOUTS): { connectionTimeout: number; socketTimeout: number } {
  return { connectionTimeout: network.connectSeconds * 1000, socketTimeout: network.idleSeconds * 1000 };
}

/**
 * Rewords the SDK's timeout errors (which name neither the server nor the setting) after its own
 * retries: "no answer within 120 s from https://… (BACKUP_REQUEST_TIMEOUT)". The error keeps its
 * name, TimeoutError, which every classifier treats as retryable.
 */
export function explainTimeouts(
  client: Pick<S3Client | KMSClient, 'middlewareStack'>,
  endpoint: string,
  network: NetworkTimeouts = DEFAULT_NETWORK_TIMEOUTS,
): void {
  // The stacks of the two clients differ only in their command types, which this does not touch.
  (client.middlewareStack as unknown as Pick<S3Client['middlewareStack'], 'add'>).add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        const e = err as { name?: string; message?: string };
        if (e?.name === 'TimeoutError' && typeof e.message === 'string') {
          e.message = /establish a connection/.test(e.message)
            ? `could not connect to ${endpoint} within ${network.connectSeconds} s (BACKUP_CONNECT_TIMEOUT)`
            : `no answer within ${network.idleSeconds} s from ${endpoint} (BACKUP_REQUEST_TIMEOUT)`;
        }
        throw err;
      }
    },
    { step: 'initialize', name: 'lifelineTimeoutWording' },
  );
}
