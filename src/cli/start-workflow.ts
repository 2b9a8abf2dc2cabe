import { WorkflowFailedError, type Client, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { LifelineConfig } from '../config/config';
import { LifelineError, rootCauseMessage } from '../errors';
import { workflowUiUrl } from '../temporal/client';
import { BackupDatabase } from '../../workflows/definitions';

export interface StartedWorkflow {
  handle: WorkflowHandleWithFirstExecutionRunId;
  workflowId: string;
  /** The run in the Web UI. */
  link: string;
}

/** Starts a workflow on Lifeline's task queue; `database` also sets the BackupDatabase search attribute. */
export async function startWorkflow(
  client: Client,
  cfg: LifelineConfig,
  type: string,
  workflowId: string,
  input: unknown,
  database?: string,
): Promise<StartedWorkflow> {
  const handle = await client.workflow.start(type, {
    taskQueue: cfg.temporal.taskQueue,
    workflowId,
    args: [input],
    ...(database && { typedSearchAttributes: [{ key: BackupDatabase, value: database }] }),
  });
  return { handle, workflowId, link: workflowUiUrl(cfg, workflowId, handle.firstExecutionRunId) };
}

/** The workflow's result; a failed run becomes a LifelineError with its root cause and the link. */
export async function resultOf<R>(started: StartedWorkflow, code: string, what: string): Promise<R> {
  try {
    return (await started.handle.result()) as R;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      throw new LifelineError(code, `${what} failed: ${rootCauseMessage(err)}`, { hint: `see the workflow history: ${started.link}` });
    }
    throw err;
  }
}
