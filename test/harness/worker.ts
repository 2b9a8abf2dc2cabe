import { Client } from '@temporalio/client';
import type { LifelineConfig } from '../../src/config/config';
import { connectTemporal } from '../../src/temporal/client';
import { createWorker } from '../../src/temporal/worker';
import type { TestServers } from './servers';

export async function testClient(servers: TestServers): Promise<Client> {
  return new Client({ connection: await connectTemporal(servers.temporalAddress) });
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
