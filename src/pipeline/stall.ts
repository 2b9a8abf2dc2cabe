import { LifelineError } from '../errors';

/** What a step that made no progress is doing: still working (the server is busy on its query), or waiting. */
export type Diagnosis = { busy: string } | { waitsOn: string };

export interface StallWatchOptions {
  /** The step, for messages: "the dump of db.example.com:5432/app". */
  what: string;
  stallSeconds: number;
  /** A number that grows while the step makes progress: bytes through a meter, tables counted. */
  progress: () => number;
  /** Called on every tick while the step is not stalled: the heartbeat, with the progress in it. */
  onAlive?: () => void;
  /** Asked once nothing moved for `stallSeconds`. Without it, no progress is a stall. */
  diagnose?: () => Promise<Diagnosis>;
  /** The caller's cancellation (the activity's); the watch's own signal follows it. */
  signal?: AbortSignal;
  tickMs?: number;
}

const DIAGNOSE_LIMIT_MS = 15_000;

/**
 * Heartbeats come from progress, not from a timer: the watch reports a step alive only while
 * something moved within the last `stallSeconds`. When nothing did, it asks `diagnose` what the
 * step waits on; a server busy on the step's own query counts as progress, anything else (a lock,
 * a server that does not answer, a child that sends nothing) aborts `signal` with a retryable
 * `Stalled` error that names it. Without this, a dump blocked on a lock would heartbeat until the
 * activity's 12 h timeout.
 */
export class StallWatch {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private last: number;
  private lastMovedAt = Date.now();
  private diagnosing = false;
  /** Set once the step was found stalled; the error to throw instead of the pipeline's AbortError. */
  stalled?: LifelineError;

  constructor(private readonly options: StallWatchOptions) {
    this.last = options.progress();
    const outer = options.signal;
    if (outer?.aborted) this.controller.abort(outer.reason);
    else outer?.addEventListener('abort', this.follow, { once: true });
    this.timer = setInterval(() => void this.tick(), options.tickMs ?? 2000);
  }

  /** Aborted when the step stalls or the caller cancels. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The error a failed step should report: the stall that stopped it, else its own. */
  reason(err: unknown): unknown {
    return this.stalled ?? err;
  }

  stop(): void {
    clearInterval(this.timer);
    this.options.signal?.removeEventListener('abort', this.follow);
  }

  private readonly follow = () => this.controller.abort(this.options.signal?.reason);

  private async tick(): Promise<void> {
    if (this.controller.signal.aborted || this.diagnosing) return;
    const now = this.options.progress();
    if (now !== this.last) {
      this.last = now;
      this.lastMovedAt = Date.now();
    }
    const idleMs = Date.now() - this.lastMovedAt;
    if (idleMs < this.options.stallSeconds * 1000) {
      this.options.onAlive?.();
      return;
    }
    this.diagnosing = true;
    try {
      // Asked twice, a moment apart: a session caught between two statements is not a stalled one.
      let diagnosis = await this.diagnose();
      if (!('busy' in diagnosis) && !this.controller.signal.aborted) {
        await new Promise((r) => setTimeout(r, Math.min(1000, this.options.tickMs ?? 1000)));
        diagnosis = await this.diagnose();
      }
      if (this.controller.signal.aborted) return;
      if ('busy' in diagnosis) {
        // A query in flight is progress while the server works on it.
        this.lastMovedAt = Date.now();
        this.options.onAlive?.();
        return;
      }
      this.stalled = stalledError(this.options.what, this.options.stallSeconds, diagnosis.waitsOn);
      this.controller.abort(this.stalled);
    } finally {
      this.diagnosing = false;
    }
  }

  private async diagnose(): Promise<Diagnosis> {
    if (!this.options.diagnose) return { waitsOn: 'nothing moved' };
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<Diagnosis>((resolve) => {
      timer = setTimeout(() => resolve({ waitsOn: `no answer to the check of what it waits on within ${DIAGNOSE_LIMIT_MS / 1000} s` }), DIAGNOSE_LIMIT_MS);
    });
    try {
      return await Promise.race([this.options.diagnose().catch((err: Error) => ({ waitsOn: `its check failed: ${err.message}` })), limit]);
    } finally {
      clearTimeout(timer);
    }
  }
}

export function stalledError(what: string, stallSeconds: number, waitsOn: string): LifelineError {
  return new LifelineError('Stalled', `${what} made no progress for ${formatSeconds(stallSeconds)} (BACKUP_STALL_TIMEOUT): it waits on ${waitsOn}`, {
    retryable: true,
    hint: 'Lifeline retries the step; if it keeps stalling, fix what it waits on, or raise BACKUP_STALL_TIMEOUT if the step legitimately stays silent that long',
  });
}

export function formatSeconds(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
