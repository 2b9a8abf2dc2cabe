import { createClient } from '../../temporal/client';
import { ensureSearchAttributes } from '../../temporal/search-attributes';
import { createWorker } from '../../temporal/worker';
import { logger } from '../../logger';
import { startMetricsEndpoint } from '../../metrics/endpoint';
import type { Command } from '../command';
import { config } from '../common';

export const workerCommand: Command = {
  name: 'worker',
  summary: 'run a worker: executes backup workflows and their steps until stopped (SIGINT/SIGTERM)',
  usage: 'lifeline worker',
  options: {},
  async run() {
    const cfg = config();
    const client = await createClient(cfg);
    await ensureSearchAttributes(client.connection, cfg.temporal.namespace);
    await client.connection.close();
    // LIFELINE_METRICS_ADDRESS: the Prometheus endpoint, started before the worker connects (it installs
    // the Temporal runtime with the SDK's metrics exporter) and stopped once the worker has stopped.
    const metrics = cfg.metrics.address ? await startMetricsEndpoint(cfg) : undefined;
    try {
      const worker = await createWorker(cfg);
      // The settings its memory depends on (bin/lifeline.js starts node with them; README, "Worker memory").
      const memory = { nodeFlags: process.execArgv.join(' '), mallocArenaMax: process.env.MALLOC_ARENA_MAX ?? 'unset' };
      logger.info({ taskQueue: cfg.temporal.taskQueue, longTaskQueue: cfg.temporal.longTaskQueue, slots: cfg.temporal.slots, address: cfg.temporal.address, databases: cfg.databases.map((d) => d.name), memory, metrics: metrics?.url }, 'worker started');
      await worker.run();
      logger.info('worker stopped');
    } finally {
      await metrics?.stop();
    }
    return 0;
  },
};
