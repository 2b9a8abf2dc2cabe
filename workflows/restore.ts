import {
  ApplicationFailure,
  CancellationScope,
  patched,
  setHandler,
  upsertSearchAttributes,
  isCancellation,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { RestoreRef } from '../activities/restore';
import { backupId, DATABASE_NAME_PATTERN, timestamp } from '../src/catalog/naming';
import {
  BackupDatabase,
  planQuery,
  RESTORE_MODES,
  restoreStateQuery,
  RestoreState,
  RTO_TARGET_MS,
  type RestorePlan,
  type RestoreStateValue,
  type RestoreVerification,
  type RestoreWorkflowInput,
  type RestoreWorkflowResult,
} from './definitions';
import { approvalGate, handlersFinished, refusedDecisionEvent } from './approval';
import { invalid, long, quick, rootMessage } from './steps';

const DURATION = /^\d+(\.\d+)?\s*(ms|s|m|h|d|seconds?|minutes?|hours?|days?)$/;

/** Checks the hand-written JSON input before anything runs; names the bad field and what is allowed. */
function validate(input: RestoreWorkflowInput): void {
  if (!input || typeof input !== 'object') throw invalid('input must be an object like {"database":"moneyflow","requestedBy":"alice"}');
  if (typeof input.database !== 'string' || !DATABASE_NAME_PATTERN.test(input.database)) {
    throw invalid(`input.database ${JSON.stringify(input.database)} is not a database name`);
  }
  if (typeof input.requestedBy !== 'string' || !input.requestedBy.trim()) throw invalid('input.requestedBy is required: who asks for this restore');
  if (input.mode !== undefined && !RESTORE_MODES.includes(input.mode)) {
    throw invalid(`input.mode ${JSON.stringify(input.mode)} is not one of ${RESTORE_MODES.join(', ')}`);
  }
  if ((input.mode === 'tables') !== (Array.isArray(input.tables) && input.tables.length > 0)) {
    throw invalid('input.tables (a non-empty list) goes with mode "tables", and only with it');
  }
  if (input.backup !== undefined && input.at !== undefined) throw invalid('give input.backup or input.at, not both');
  if (input.at !== undefined && Number.isNaN(Date.parse(input.at))) throw invalid(`input.at ${JSON.stringify(input.at)} is not an ISO time`);
  if (input.target !== undefined && /^postgres(ql)?:\/\/[^/@]*:[^/@]*@|[?&]password=/i.test(input.target)) {
    throw invalid('input.target holds a password; pass the URL without it (the worker reads .pgpass or PGPASSFILE)');
  }
  if (input.withGlobals !== undefined && typeof input.withGlobals !== 'boolean') throw invalid('input.withGlobals is true or false');
  if (input.approvalTimeout !== undefined && !DURATION.test(input.approvalTimeout)) {
    throw invalid(`input.approvalTimeout ${JSON.stringify(input.approvalTimeout)} is not a duration like "4h" or "30m"`);
  }
}

/** How far a restore got: what a failure notice must say about the target. */
type Reached = 'untouched' | 'restoring' | 'swapping' | 'replaced' | 'writing tables' | 'tables replaced';

/** The target's state after a failure, worded from the step the restore reached. */
function whatHappenedTo(label: string, reached: Reached, kept: { snapshotId?: string; previousDatabase?: string }): string {
  const undo = kept.snapshotId ? ` The pre-restore snapshot ${kept.snapshotId} holds the database as it was before the restore.` : '';
  switch (reached) {
    case 'untouched':
    case 'restoring':
      return `The target ${label} was not changed.`;
    case 'swapping':
      return `The swap into ${label} did not complete: check the server, ${label} may be the restored copy or missing` +
        `${kept.previousDatabase ? `, and the database it held may now be named ${kept.previousDatabase}` : ''}.${undo}`;
    case 'replaced':
      return `The target ${label} WAS replaced by the restored copy before the failure` +
        `${kept.previousDatabase ? `; the database it held is kept as ${kept.previousDatabase}` : ''}.${undo}`;
    case 'writing tables':
      return `The table restore did not complete: it runs in one transaction, so the tables in ${label} are as they were.`;
    case 'tables replaced':
      return `The tables in ${label} WERE replaced (committed) before the failure.${undo}`;
  }
}

/**
 * A restore, as the runbook asks: pick and read back the backup, show the plan, wait for a person
 * (or a forced request where the target allows it), snapshot the target, restore beside it, verify,
 * and only then swap it in. Until the swap the target is untouched; a cancelled or timed-out
 * request changes nothing.
 */
export async function restoreWorkflow(input: RestoreWorkflowInput): Promise<RestoreWorkflowResult> {
  try {
    return await restore(input);
  } finally {
    await handlersFinished();
  }
}

async function restore(input: RestoreWorkflowInput): Promise<RestoreWorkflowResult> {
  validate(input);
  const requestedAt = Date.now();
  let state: RestoreStateValue = 'PLANNING';
  let plan: RestorePlan | undefined;
  const setState = (value: RestoreStateValue) => {
    state = value;
    upsertSearchAttributes([
      { key: RestoreState, value },
      { key: BackupDatabase, value: input.database },
    ]);
  };
  setHandler(planQuery, () => plan && { ...plan, decisions: gate.decisions() });
  setHandler(restoreStateQuery, () => state);
  const gate = approvalGate('restore', {
    notReady: () => {
      if (state === 'PLANNING') return 'the plan is not ready yet: a decision counts only once the plan is shown (state WAITING_APPROVAL); query `plan`, then decide';
      if (state !== 'WAITING_APPROVAL') return `this restore is ${state}; there is nothing to decide`;
      return undefined;
    },
    state: () => state,
    fourEyesRequester: () => ((plan?.target.fourEyes ?? plan?.target.production) ? input.requestedBy : undefined),
    onRefused: (record, n) => quick.audit(`decision-refused-${n}`, refusedDecisionEvent('restore', record, { database: input.database, backupId: plan?.backupId })),
  });
  setState('PLANNING');

  const target = input.target ?? input.database;
  let scratch: string | undefined;
  let reached: Reached = 'untouched';
  let snapshotId: string | undefined;
  let previousDatabase: string | undefined;
  try {
    plan = await long.planRestore(input);
    const ref: RestoreRef = { database: input.database, backupId: plan.backupId, target, storage: input.storage, ...(input.force && { forced: true }) };

    let outcome: NonNullable<RestoreWorkflowResult['decision']>;
    if (input.force) {
      if (!plan.target.allowForceRestore) {
        throw ApplicationFailure.nonRetryable(
          `force refused: ${plan.target.forceRefusal ?? `target ${plan.target.name} ${plan.target.production ? 'is marked production' : 'does not allow forced restores'} (allowForceRestore is false); ask for an approval instead`}`,
          'ForceRefused',
        );
      }
      outcome = { by: input.requestedBy, reason: input.reason, decision: 'forced' };
    } else {
      setState('WAITING_APPROVAL');
      const { workflowId } = workflowInfo();
      await quick.notify({
        severity: 'info',
        event: 'restore.waiting',
        database: input.database,
        backupId: plan.backupId,
        title: `Restore of ${plan.target.label} waits for approval`,
        text: `${input.requestedBy} asks: ${plan.summary}${input.reason ? `\nReason: ${input.reason}` : ''}\nApprove: lifeline approve ${workflowId} --by NAME   Cancel: lifeline cancel ${workflowId} --by NAME --reason TEXT`,
      });
      outcome = await gate.wait((input.approvalTimeout ?? '4h') as Duration);
    }
    // Runs from before the audit trail replay without these steps.
    const audited = patched('audit-trail');
    const record = (action: string, actor: string, status: string, details: Record<string, unknown>) =>
      audited ? quick.audit(action, { actor, action, status, database: input.database, backupId: plan!.backupId, details }) : Promise.resolve(0);
    await record('restore.request', input.requestedBy, 'requested', { target: plan.target.label, mode: plan.mode, storage: input.storage ?? 'local', reason: input.reason });
    await record(`restore.${outcome.decision === 'timed out' ? 'timed-out' : outcome.decision}`, outcome.by, outcome.decision, { reason: outcome.reason });
    if (outcome.decision === 'cancelled' || outcome.decision === 'timed out') {
      setState('CANCELLED');
      return { outcome: 'cancelled', plan, decision: outcome };
    }

    const approvedAt = Date.now();
    setState('RESTORING');
    reached = 'restoring';
    snapshotId = plan.snapshotFirst ? await long.snapshotTarget(target, backupId(plan.target.name, new Date(approvedAt), 'pre-restore')) : undefined;
    let verification: RestoreVerification;
    const schemaOnly = plan.mode === 'schema-only';
    if (plan.mode === 'full' || schemaOnly) {
      scratch = `${plan.target.name.slice(0, 40)}_restore_${timestamp(new Date(approvedAt))}`;
      // --with-globals is one more argument, only when asked for: the commands the workflow sends are unchanged.
      await long.restoreIntoScratch(ref, scratch, schemaOnly, ...(input.withGlobals === true ? [true] : []));
      setState('VERIFYING');
      verification = await long.verifyRestored(ref, scratch, plan.tables, schemaOnly);
      previousDatabase = `${plan.target.name.slice(0, 40)}_replaced_${timestamp(new Date(approvedAt))}`;
      reached = 'swapping';
      const swapped = await quick.swapIn(target, scratch, previousDatabase, input.force === true);
      reached = 'replaced';
      scratch = undefined;
      if (!swapped.previousKept) previousDatabase = undefined;
    } else {
      reached = 'writing tables';
      await long.restoreTables(ref, plan.tables);
      reached = 'tables replaced';
      setState('VERIFYING');
      verification = await long.verifyRestored(ref, undefined, plan.tables, false);
    }
    verification.checks.push(...(await quick.checkInPlace(target)));
    const verifiedAt = Date.now();
    setState('DONE');
    const rto = {
      requestToVerifiedMs: verifiedAt - requestedAt,
      approvalToVerifiedMs: verifiedAt - approvedAt,
      targetMs: RTO_TARGET_MS,
      met: verifiedAt - approvedAt <= RTO_TARGET_MS,
    };
    await quick
      .notify({
        severity: 'info',
        event: 'restore.succeeded',
        database: input.database,
        backupId: plan.backupId,
        title: `Restore of ${plan.target.label} verified`,
        text: `${plan.summary}\nApproved: ${outcome.decision} by ${outcome.by}. Took ${Math.round(rto.approvalToVerifiedMs / 1000)} s from approval.` +
          (previousDatabase ? `\nThe previous database is kept as ${previousDatabase}.` : '') +
          (snapshotId ? `\nPre-restore snapshot: ${snapshotId}.` : ''),
      })
      .catch(() => undefined);
    await record('restore', outcome.by, 'restored', { target: plan.target.label, mode: plan.mode, rtoMs: rto.approvalToVerifiedMs, snapshotId, previousDatabase });
    return { outcome: 'restored', plan, decision: outcome, snapshotId, previousDatabase, verification, rto };
  } catch (err) {
    setState(isCancellation(err) ? 'CANCELLED' : 'FAILED');
    await CancellationScope.nonCancellable(async () => {
      if (scratch) await quick.dropScratch(target, scratch).catch(() => undefined);
      const label = plan?.target.label ?? target;
      await quick
        .notify({
          severity: 'critical',
          event: 'restore.failed',
          database: input.database,
          backupId: plan?.backupId,
          title: `Restore of ${label} ${isCancellation(err) ? 'CANCELLED' : 'FAILED'}`,
          text: `${rootMessage(err)}\n${whatHappenedTo(label, reached, { snapshotId, previousDatabase })} Workflow ${workflowInfo().workflowId}.`,
        })
        .catch(() => undefined);
    });
    throw err;
  }
}
