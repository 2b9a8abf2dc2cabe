import { WorkflowUpdateFailedError } from '@temporalio/client';
import { LifelineError, rootCauseMessage, UsageError } from '../../errors';
import { createClient } from '../../temporal/client';
import { approveUpdate, cancelUpdate, type RestoreWorkflowResult, type RetentionWorkflowResult } from '../../../workflows/definitions';
import type { Command } from '../command';
import { config, jsonOption } from '../common';
import { printJson } from '../output';
import { describeRestoreResult } from '../restore-output';

/** approve and cancel: the same update with a different verdict, answered by the workflow itself. */
function decisionCommand(kind: 'approve' | 'cancel'): Command {
  const needsReason = kind === 'cancel';
  return {
    name: kind,
    summary: kind === 'approve' ? 'approve a waiting restore or cleanup (it starts at once); four eyes: not your own request for a production database' : 'cancel a waiting restore or cleanup (nothing is changed)',
    usage: `lifeline ${kind} WORKFLOW_ID --by NAME ${needsReason ? '--reason TEXT' : '[--reason TEXT]'}${kind === 'approve' ? ' [--wait] [--json]' : ''}`,
    options: { by: { type: 'string' }, reason: { type: 'string' }, ...(kind === 'approve' ? { wait: { type: 'boolean' as const }, ...jsonOption } : {}) },
    allowPositionals: true,
    async run({ values, positionals }) {
      if (positionals.length !== 1) throw new UsageError('give the workflow id of the waiting restore (see `lifeline restores`) or cleanup');
      const by = (values.by as string | undefined)?.trim();
      if (!by) throw new UsageError('--by NAME is required: who decides');
      if (needsReason && !(values.reason as string | undefined)?.trim()) throw new UsageError('--reason TEXT is required to cancel');
      const cfg = config();
      const client = await createClient(cfg);
      const handle = client.workflow.getHandle(positionals[0]!);
      let answer: string;
      try {
        answer = await handle.executeUpdate(kind === 'approve' ? approveUpdate : cancelUpdate, { args: [{ by, reason: values.reason as string | undefined }] });
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError) {
          throw new LifelineError('DecisionRejected', `${kind} rejected: ${rootCauseMessage(err)}`, {
            hint: `nothing was changed; the refused decision is recorded in the audit trail and in the workflow's \`decisions\` query`,
          });
        }
        throw err;
      }
      if (!values.wait) {
        if (values.json) printJson({ workflowId: positionals[0], answer });
        else process.stdout.write(`${positionals[0]}: ${answer}.\n`);
        return 0;
      }
      const result = (await handle.result()) as RestoreWorkflowResult | RetentionWorkflowResult;
      if (values.json) printJson(result);
      if ('deleted' in result) {
        if (!values.json) process.stdout.write(`Cleanup ${result.outcome}: ${result.deleted.filter((d) => d.ok).length} backups deleted.\n`);
        return result.deleted.every((d) => d.ok) ? 0 : 1;
      }
      if (!values.json) process.stdout.write(describeRestoreResult(result));
      return result.outcome === 'restored' ? 0 : 1;
    },
  };
}

export const approveCommand = decisionCommand('approve');
export const cancelCommand = decisionCommand('cancel');
