/** What every workflow shares: how its steps are retried, and how failures are worded. */
import { ApplicationFailure, isCancellation, patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

/** Quick steps: retried a few times, then the workflow fails and someone is told. */
export const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
});

/** Long steps heartbeat their progress; a silent worker (crash) is noticed within the heartbeat timeout. */
export const long = proxyActivities<Activities>({
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
