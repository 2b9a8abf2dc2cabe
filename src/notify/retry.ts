import { LifelineError } from '../errors';

/** A delivery with a few quick retries (0.5 s, 1 s, …) of what says a retry can help: a notice should not wait for the next run. */
export async function deliverWithRetries(attempts: number, send: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (attempt >= attempts || !(err instanceof LifelineError) || !err.retryable) throw err;
      await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    }
  }
}
