import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { LifelineError } from '../src/errors';
import { redactError } from '../src/security/redact';

/**
 * Turns what an activity throws into a Temporal failure: a LifelineError keeps its code as the
 * failure type and is retried only if it says a retry can help; anything unexpected is retried.
 */
export function toFailure(err: unknown): unknown {
  // A library's own message (a driver, the AWS SDK) may quote a URL with its password.
  if (err instanceof ApplicationFailure) return redactError(err);
  if (err instanceof LifelineError) {
    return ApplicationFailure.create({
      type: err.code,
      message: err.describe(),
      nonRetryable: !err.retryable,
      details: err.details ? [err.details] : undefined,
    });
  }
  return redactError(err);
}

/** The workflow this activity runs for: it owns the backup id a dump writes (a retry of it resumes). */
export function owningWorkflow(): { workflowId: string; runId: string } | undefined {
  const execution = Context.current().info.workflowExecution;
  return execution && { workflowId: execution.workflowId, runId: execution.runId };
}

export function failuresTranslated<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await fn(...args);
    } catch (err) {
      throw toFailure(err);
    }
  };
}
