import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import type { LifelineConfig } from '../../src/config/config';
import { connectTemporal } from '../../src/temporal/client';
import { dataConverterFor } from '../../src/temporal/data-converter';
import { createWorker } from '../../src/temporal/worker';
import type { TestServers } from './servers';

/**
 * A client of the test server with the config's payload codec: it encrypts what it sends and
 * decrypts results with the config's codec keys (and any other config in this process opened).
 */
export async function testClient(servers: TestServers, config: LifelineConfig): Promise<Client> {
  return new Client({ connection: await connectTemporal(servers.temporalAddress), dataConverter: dataConverterFor(config) });
}

/** A Lifeline worker on the config's task queue, running until the returned stop() (which waits for it). */
export async function runWorker(config: LifelineConfig): Promise<() => Promise<void>> {
  const worker = await createWorker(config);
  const running = worker.run();
  return async () => {
    worker.shutdown();
    await running;
  };
}

/** Every payload in a history (inputs, results, heartbeats, failures' attributes), decrypted by the client's codec, as text. */
export async function decodedPayloadsOf(client: Client, history: unknown): Promise<string[]> {
  const found: Payload[] = [];
  const walk = (o: unknown): void => {
    if (!o || typeof o !== 'object' || ArrayBuffer.isView(o)) return;
    if ('metadata' in o && 'data' in o) found.push(o as Payload);
    else for (const v of Object.values(o)) walk(v);
  };
  walk(history);
  let payloads = found;
  for (const codec of [...client.options.loadedDataConverter.payloadCodecs].reverse()) payloads = await codec.decode(payloads);
  return payloads.map((p) => Buffer.from(p.data ?? []).toString('utf8'));
}
