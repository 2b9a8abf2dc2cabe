/**
 * Runs `work` over the items with at most `jobs` at a time, in the order given (callers put the
 * largest first, so that the long ones start early). The first failure aborts the others through
 * the signal each one gets, and is the error thrown once all have stopped.
 */
export async function runPool<T>(items: readonly T[], jobs: number, work: (item: T, signal: AbortSignal) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const abort = new AbortController();
  const onAbort = () => abort.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (!abort.signal.aborted && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item, abort.signal);
      } catch (error) {
        failure ??= { error };
        abort.abort(error);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, lane));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.error;
  if (signal?.aborted) throw signal.reason;
}
