/** What every workflow shares: how its steps are retried, and how failures are worded. */
import {
  ApplicationFailure,
  isCancellation,
  patched,
  proxyActivities,
  workflowInfo,
  type ActivityInterfaceFor,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities';

/**
 * Quick steps (checks, catalog, notices, audit, alerts, the RPO watchdog, plans, retention decisions): on the
 * workflow's own task queue, never behind long steps. Retried a few times, then the workflow fails and someone is told.
 */
export const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
});

/**
 * The task queue of long steps: the workflow's own queue plus `-long` (LIFELINE_TASK_QUEUE=q: workflows and
 * short steps on `q`, long steps on `q-long`; src/temporal/worker.ts polls both, each with its own slots).
 * Derived from the workflow's info, so it is deterministic and needs no input.
 */
export function longTaskQueue(): string {
  return `${workflowInfo().taskQueue}-long`;
}

/**
 * Activities with these options, sent to the long task queue (named when a step is scheduled: a module's
 * top level runs outside any workflow). Replay: core does not compare a scheduled activity's task queue with
 * the recorded one, so histories recorded when every step ran on the workflow's queue still replay; a workflow
 * started before the split schedules its next long steps on `<q>-long`, which every upgraded worker polls.
 */
export function onLongQueue(options: ActivityOptions): ActivityInterfaceFor<Activities> {
  return new Proxy({} as ActivityInterfaceFor<Activities>, {
    get(_, name) {
      const activities = proxyActivities<Activities>({ ...options, taskQueue: longTaskQueue() });
      return activities[name as keyof Activities];
    },
  });
}

/**
 * Long steps (dump, verify, restore, snapshot, re-wrap, delete, drill download/decrypt/restore/verify) run on the
 * long task queue. They heartbeat their progress; a silent worker (crash) is noticed within the heartbeat timeout.
 */
export const long = onLongQueue({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 3 },
});

/** The message an operator needs: the innermost cause (an ActivityFailure wraps the real error). */
export { rootCauseMessage as rootMessage } from '../src/errors';

export function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'InvalidInput');
}

/** The type of the innermost application failure (a LifelineError code), if any. */
export function failureType(err: unknown): string | undefined {
  let current = err as { type?: string; cause?: unknown } | undefined;
  let type: string | undefined;
  while (current && typeof current === 'object') {
    if (typeof current.type === 'string') type = current.type;
    current = current.cause as typeof current;
  }
  return type;
}

/**
 * Lets a cancellation through a catch that would otherwise swallow it. Workflows that ran before
 * this rule replay as they ran (the patch marks the histories written after it).
 */
export function cancellationRethrown(err: unknown): void {
  if (isCancellation(err) && patched('cancellation-rethrown')) throw err;
}
