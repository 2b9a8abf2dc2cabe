import { Worker, type WorkerOptions } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createActivities } from '../../activities';
import type { LifelineConfig } from '../config/config';
import { projectRoot } from '../infra/paths';
import { logger } from '../logger';
import { connectNative } from './connection-options';
import { dataConverterFor } from './data-converter';
import { installTemporalRuntime } from './runtime';

/** In a build (`npm run build`), the workflows bundled ahead of time; from source, bundled at start. */
export function workflowCode(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const compiled = __filename.endsWith('.js');
  const bundle = path.join(projectRoot(), 'dist', 'workflow-bundle.js');
  if (compiled && existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
  return { workflowsPath: path.join(projectRoot(), 'workflows', 'index.ts') };
}

export async function createWorker(config: LifelineConfig, overrides: Partial<WorkerOptions> = {}): Promise<Worker> {
  installTemporalRuntime();
  // TLS and API key from the configuration; a refusal says what to check (CA file, server name, client certificate).
  const connection = await connectNative(config);
  return Worker.create({
    connection,
    dataConverter: dataConverterFor(config),
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...workflowCode(),
    activities: createActivities(config, logger),
    // One dump per job slot: each holds a pg_dump, a zstd and a connection.
    maxConcurrentActivityTaskExecutions: config.parallelJobs,
    maxCachedWorkflows: 100,
    // On SIGTERM, a short step finishes; a long dump is cancelled (pg_dump killed, temp file removed)
    // and retried by another worker.
    shutdownGraceTime: `${config.shutdownGraceSeconds} seconds`,
    // Heartbeats carry upload state: at most 5 s old when a crashed worker's step is retried.
    maxHeartbeatThrottleInterval: '5 seconds',
    ...overrides,
  });
}
