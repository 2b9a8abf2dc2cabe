import { Context } from '@temporalio/activity';
import { StallWatch, type Diagnosis } from '../src/pipeline/stall';

export interface WatchedStep {
  /** The step, for messages and heartbeats: "verifying the restore into db:5432/app". */
  what: string;
  stallSeconds: number;
  /** Asked once nothing moved for `stallSeconds`: a server busy on the step's query still counts as progress. */
  diagnose?: () => Promise<Diagnosis>;
  /** Called once the step is found stalled, before it fails: stop what it waits on (cancel its query). */
  onStalled?: () => Promise<void>;
}

/**
 * Runs an activity step that reports progress as a growing count (tables checked, rows, bytes):
 * it heartbeats while the count moves, and fails with a retryable `Stalled` naming what it waits
 * on once nothing moved for `stallSeconds`. The step gets the watch's signal (the activity's
 * cancellation, or the stall) for its child processes.
 */
export async function heartbeatFromProgress<R>(step: WatchedStep, run: (report: (count: number) => void, signal: AbortSignal) => Promise<R>): Promise<R> {
  const ctx = Context.current();
  let count = 0;
  const watch = new StallWatch({
    what: step.what,
    stallSeconds: step.stallSeconds,
    progress: () => count,
    onAlive: () => ctx.heartbeat({ phase: step.what, done: count }),
    diagnose: step.diagnose,
    signal: ctx.cancellationSignal,
  });
  // A query stuck on a lock does not see the signal: the step fails at once, and its query is cancelled.
  const stopped = new Promise<never>((_, reject) => {
    watch.signal.addEventListener('abort', () => {
      if (watch.stalled) void step.onStalled?.();
      reject(watch.signal.reason);
    }, { once: true });
  });
  stopped.catch(() => undefined);
  try {
    return await Promise.race([run((n) => (count = n), watch.signal), stopped]);
  } catch (err) {
    throw watch.reason(err);
  } finally {
    watch.stop();
  }
}
