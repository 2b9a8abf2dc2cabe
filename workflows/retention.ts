import type { Duration } from '@temporalio/common';
import { setHandler, workflowInfo } from '@temporalio/workflow';
import type { TargetPlan } from '../src/retention/apply';
import { approvalGate, handlersFinished, refusedDecisionEvent } from './approval';
import {
  retentionPlanQuery,
  retentionStateQuery,
  type RetentionDeletion,
  type RetentionStateValue,
  type RetentionWorkflowInput,
  type RetentionWorkflowResult,
} from './definitions';
import { invalid, long, quick } from './steps';

/**
 * The daily cleanup: plan every database in every storage (what goes under which rule, what stays
 * and why), wait for a person when a plan would remove more than the allowed share of a database's
 * backups, then delete and record each deletion in the audit trail. The plan that was approved is
 * the one carried out.
 */
export async function retentionWorkflow(input: RetentionWorkflowInput = {}): Promise<RetentionWorkflowResult> {
  try {
    return await retention(input);
  } finally {
    await handlersFinished();
  }
}

async function retention(input: RetentionWorkflowInput): Promise<RetentionWorkflowResult> {
  if (input.olderThanDays !== undefined && !(Number.isInteger(input.olderThanDays) && input.olderThanDays >= 0)) {
    throw invalid(`input.olderThanDays ${JSON.stringify(input.olderThanDays)} is not a whole number of days`);
  }
  let state: RetentionStateValue = 'PLANNING';
  let plans: TargetPlan[] | undefined;
  setHandler(retentionPlanQuery, () => plans);
  setHandler(retentionStateQuery, () => state);
  // A scheduled cleanup has no requester: anyone named may decide. A person's own cleanup needs someone else's approval.
  const requester = input.requestedBy && input.requestedBy !== 'schedule' ? input.requestedBy : undefined;
  const gate = approvalGate('cleanup', {
    notReady: () => (state === 'WAITING_APPROVAL' ? undefined : `this cleanup is ${state}; there is nothing to decide`),
    state: () => state,
    fourEyesRequester: () => requester,
    onRefused: (record, n) => quick.audit(`decision-refused-${n}`, refusedDecisionEvent('cleanup', record)),
  });

  const inUse = await quick.backupsInUse();
  const planned: TargetPlan[] = [];
  for (const target of await quick.retentionTargets(input.databases ?? [])) {
    planned.push(await quick.planRetentionFor(target, { inUse, olderThanDays: input.olderThanDays }));
  }
  plans = planned;
  if (input.dryRun) {
    state = 'DONE';
    return { outcome: 'dry-run', plans, deleted: [] };
  }

  let decision: RetentionWorkflowResult['decision'];
  const large = plans.filter((p) => p.needsApproval && p.plan.delete.length);
  if (large.length) {
    state = 'WAITING_APPROVAL';
    const { workflowId } = workflowInfo();
    await quick.notify({
      severity: 'info',
      event: 'retention.waiting',
      title: 'A cleanup waits for approval',
      text:
        large.map((p) => `${p.database} in ${p.storage}: ${p.plan.delete.length} of ${p.total} backups would be deleted`).join('\n') +
        `\nReview: lifeline cleanup --dry-run   Approve: lifeline approve ${workflowId} --by NAME   Cancel: lifeline cancel ${workflowId} --by NAME --reason TEXT`,
    });
    decision = await gate.wait((input.approvalTimeout ?? '24h') as Duration);
    if (decision.decision !== 'approved') {
      state = 'CANCELLED';
      return { outcome: 'cancelled', plans, deleted: [], decision };
    }
  }

  state = 'DELETING';
  const deleted: RetentionDeletion[] = [];
  const actor = decision?.by ?? input.requestedBy ?? 'schedule';
  for (const p of plans) {
    if (!p.plan.delete.length) continue;
    deleted.push(...(await long.deleteBackups({ database: p.database, storage: p.storage }, p.plan.delete, actor)));
  }
  state = 'DONE';
  const failed = deleted.filter((d) => !d.ok);
  if (failed.length) {
    await quick
      .notify({
        severity: 'warning',
        event: 'retention.failed',
        title: `Cleanup could not delete ${failed.length} backup(s)`,
        text: failed.map((f) => `${f.storage}/${f.backupId}: ${f.error}`).join('\n'),
      })
      .catch(() => undefined);
  }
  return { outcome: 'applied', plans, deleted, decision };
}
