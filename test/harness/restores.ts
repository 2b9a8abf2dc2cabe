import type { Client } from '@temporalio/client';
import { RESTORE_WORKFLOW_TYPE, type RestoreWorkflowInput, type RestoreWorkflowResult } from '../../workflows/definitions';

/**
 * Runs restore workflows to their end, forced (no approval), one per second at most: pre-restore
 * snapshot ids have one-second resolution. `defaults` fill what each call leaves out.
 */
export function restoreRunner(client: () => Client, taskQueue: () => string, prefix: string, defaults: () => Partial<RestoreWorkflowInput> = () => ({})) {
  let lastEnded = 0;
  return async (input: Partial<RestoreWorkflowInput>): Promise<RestoreWorkflowResult> => {
    while (Math.floor(Date.now() / 1000) === Math.floor(lastEnded / 1000)) await new Promise((r) => setTimeout(r, 50));
    try {
      return (await client().workflow.execute(RESTORE_WORKFLOW_TYPE, {
        taskQueue: taskQueue(),
        workflowId: `${prefix}-restore-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`,
        args: [{ requestedBy: 'test', force: true, ...defaults(), ...input } as RestoreWorkflowInput],
      })) as RestoreWorkflowResult;
    } finally {
      lastEnded = Date.now();
    }
  };
}
