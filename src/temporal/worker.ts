import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
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

/**
 * Options that concern workflows (or the main queue's activity slots): they go to the main Worker only,
 * never to the activity-only Worker of the long queue.
 */
const WORKFLOW_ONLY: ReadonlySet<string> = new Set([
  'taskQueue',
  'workflowsPath',
  'workflowBundle',
  'bundlerOptions',
  'maxCachedWorkflows',
  'maxConcurrentWorkflowTaskExecutions',
  'maxConcurrentWorkflowTaskPolls',
  'workflowTaskPollerBehavior',
  'workflowThreadPoolSize',
  'reuseV8Context',
  'stickyQueueScheduleToStartTimeout',
  'nonStickyToStickyPollRatio',
  'maxConcurrentLocalActivityExecutions',
  'maxConcurrentActivityTaskExecutions',
]);

/**
 * One worker process, two Temporal Workers on one connection, so that long steps cannot starve short ones:
 * - `main` polls `config.temporal.taskQueue`: every workflow, and the short steps (checks, catalog, notices,
 *   audit, alerts, the RPO watchdog), `slots.short` at a time (LIFELINE_SHORT_STEP_SLOTS);
 * - `long` polls `config.temporal.longTaskQueue` (`<taskQueue>-long`): only the long steps (dump, verify,
 *   restore, transfer, drill), `slots.long` at a time (LIFELINE_LONG_STEP_SLOTS). Workflows send them there
 *   (workflows/steps.ts: the queue a workflow runs on, plus `-long`).
 * Two dumps filling the long slots leave the short slots and the workflow tasks free.
 * Both register every activity. Upgrade from one queue: a workflow started before the split schedules its
 * next long steps on the long queue once this code runs it (the queue of a recorded step is not compared on
 * replay), and a workflow task an old worker still runs schedules them on the main queue, which this worker
 * serves too; every upgraded worker polls both.
 */
export class LifelineWorker {
  constructor(
    readonly main: Worker,
    readonly long: Worker,
    private readonly connection: NativeConnection,
  ) {}

  /**
   * Runs both until both stop (shutdown(), or SIGINT/SIGTERM through the runtime, which stops each).
   * If one fails, the other is shut down, and run() rejects with the first failure once both have stopped.
   */
  async run(): Promise<void> {
    const runs = [this.main, this.long].map((w) =>
      w.run().catch((err: unknown) => {
        this.shutdown();
        throw err;
      }),
    );
    const results = await Promise.allSettled(runs);
    await this.connection.close().catch(() => undefined);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Starts a graceful shutdown of both (each finishes or cancels its running steps within shutdownGraceTime). */
  shutdown(): void {
    for (const w of [this.main, this.long]) if (w.getState() === 'RUNNING') w.shutdown();
  }

  /** RUNNING while either runs; otherwise the main Worker's state. */
  getState(): ReturnType<Worker['getState']> {
    return this.long.getState() === 'RUNNING' ? 'RUNNING' : this.main.getState();
  }
}

/** `overrides` go to the main Worker; those that are not about workflows (or slots) to the long one too. */
export async function createWorker(config: LifelineConfig, overrides: Partial<WorkerOptions> = {}): Promise<LifelineWorker> {
  installTemporalRuntime();
  // TLS and API key from the configuration; a refusal says what to check (CA file, server name, client certificate).
  const connection = await connectNative(config);
  try {
    const shared = {
      connection,
      dataConverter: dataConverterFor(config),
      namespace: config.temporal.namespace,
      activities: createActivities(config, logger),
      // On SIGTERM, a short step finishes; a long dump is cancelled (pg_dump killed, temp file removed)
      // and retried by another worker.
      shutdownGraceTime: `${config.shutdownGraceSeconds} seconds`,
      // Heartbeats carry upload state: at most 5 s old when a crashed worker's step is retried.
      maxHeartbeatThrottleInterval: '5 seconds',
    } satisfies Partial<WorkerOptions>;
    const forLong = Object.fromEntries(Object.entries(overrides).filter(([k]) => !WORKFLOW_ONLY.has(k))) as Partial<WorkerOptions>;
    const main = await Worker.create({
      ...shared,
      taskQueue: config.temporal.taskQueue,
      ...workflowCode(),
      // Short steps: many at once, none holds a dump's resources for long.
      maxConcurrentActivityTaskExecutions: config.temporal.slots.short,
      maxCachedWorkflows: 100,
      ...overrides,
    });
    const long = await Worker.create({
      ...shared,
      taskQueue: config.temporal.longTaskQueue,
      // Activities only (no workflow code): one long step per slot, each holding a pg_dump or pg_restore,
      // a zstd and connections.
      maxConcurrentActivityTaskExecutions: config.temporal.slots.long,
      ...forLong,
    });
    return new LifelineWorker(main, long, connection);
  } catch (err) {
    await connection.close().catch(() => undefined);
    throw err;
  }
}
