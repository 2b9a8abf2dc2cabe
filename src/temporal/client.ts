import { Client, Connection } from '@temporalio/client';
import type { LifelineConfig } from '../config/config';
import { LifelineError } from '../errors';
import { temporalConnectFailure, temporalConnectionOptions } from './connection-options';
import { dataConverterFor } from './data-converter';

/** A connection to a plain (test or dev) server at `address`, or to the configured frontend with its TLS and API key. */
export async function connectTemporal(target: string | LifelineConfig): Promise<Connection> {
  const options = typeof target === 'string' ? { address: target } : await temporalConnectionOptions(target);
  const address = options.address;
  try {
    return await Connection.connect({ ...options, connectTimeout: '5s' });
  } catch (err) {
    // With the configuration: a TLS or API-key refusal named as such (CA file, server name, what to check).
    if (typeof target !== 'string') throw await temporalConnectFailure(err, target, options);
    throw new LifelineError('TemporalUnavailable', `cannot reach Temporal at ${address}: ${(err as Error).message}`, {
      retryable: true,
      hint: 'start it with `npm start` (lifeline up), or set TEMPORAL_ADDRESS to a running server',
      cause: err,
    });
  }
}

export async function createClient(config: LifelineConfig): Promise<Client> {
  const connection = await connectTemporal(config);
  return new Client({ connection, namespace: config.temporal.namespace, dataConverter: dataConverterFor(config) });
}

/** The Web UI address of a workflow, for messages (dev server default; TEMPORAL_UI_URL overrides). */
export function workflowUiUrl(config: LifelineConfig, workflowId: string, runId?: string): string {
  const base = process.env.TEMPORAL_UI_URL ?? 'http://localhost:8233';
  const tail = runId ? `/${encodeURIComponent(runId)}` : '';
  return `${base}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}${tail}`;
}
