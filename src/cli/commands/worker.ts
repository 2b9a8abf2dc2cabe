import { createClient } from '../../temporal/client';
import { ensureSearchAttributes } from '../../temporal/search-attributes';
import { createWorker } from '../../temporal/worker';
import { logger } from '../../logger';
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
    const worker = await createWorker(cfg);
    // The settings its memory depends on (bin/lifeline.js starts node with them; README, "Worker memory").
    const memory = { nodeFlags: process.execArgv.join(' '), mallocArenaMax: process.env.MALLOC_ARENA_MAX ?? 'unset' };
    logger.info({ taskQueue: cfg.temporal.taskQueue, address: cfg.temporal.address, databases: cfg.databases.map((d) => d.name), memory }, 'worker started');
    await worker.run();
    logger.info('worker stopped');
    return 0;
  },
};
