import { createClient } from '../../temporal/client';
import { planQuery, RESTORE_WORKFLOW_TYPE } from '../../../workflows/definitions';
import type { Command } from '../command';
import { config, jsonOption } from '../common';
import { printJson } from '../output';
import { describePlan } from '../restore-output';

export const restoresCommand: Command = {
  name: 'restores',
  summary: 'list restores waiting for a decision, with their plans',
  usage: 'lifeline restores [--json]',
  options: { ...jsonOption },
  async run({ values }) {
    const cfg = config();
    const client = await createClient(cfg);
    const waiting = [];
    const query = `WorkflowType = '${RESTORE_WORKFLOW_TYPE}' AND RestoreState = 'WAITING_APPROVAL' AND ExecutionStatus = 'Running'`;
    for await (const w of client.workflow.list({ query })) {
      const plan = await client.workflow.getHandle(w.workflowId, w.runId).query(planQuery).catch(() => undefined);
      waiting.push({ workflowId: w.workflowId, requestedAt: w.startTime.toISOString(), plan });
    }
    if (values.json) printJson(waiting);
    else if (waiting.length === 0) process.stdout.write('No restore is waiting for a decision.\n');
    else
      for (const w of waiting) {
        process.stdout.write(`${w.workflowId}  (requested ${w.requestedAt})\n${w.plan ? describePlan(w.plan) : ''}  approve: lifeline approve ${w.workflowId} --by NAME\n\n`);
      }
    return 0;
  },
};
