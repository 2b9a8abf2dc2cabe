import type { Duration } from '@temporalio/common';
import { allHandlersFinished, ApplicationFailure, CancellationScope, condition, patched, setHandler } from '@temporalio/workflow';
import {
  approveSignal,
  approveUpdate,
  cancelSignal,
  cancelUpdate,
  decisionsQuery,
  type Decision,
  type DecisionRecord,
} from './definitions';
import { personNameProblem, samePerson } from './person-names';

export type Verdict = Decision & { decision: 'approved' | 'cancelled' };

export interface GateRules {
  /** Why a decision cannot count now (nothing is waiting for one), or undefined while the workflow waits. */
  notReady: () => string | undefined;
  /** The workflow's state, recorded with each decision. */
  state: () => string;
  /** Who asked, when an approval must come from someone else (four eyes); undefined: any named person. */
  fourEyesRequester: () => string | undefined;
  /** Records a decision that did not count (the audit trail); `n` numbers it within the run. */
  onRefused: (record: DecisionRecord, n: number) => Promise<unknown>;
}

/**
 * The person-in-the-loop step restores and large cleanups share: `approve`/`cancel` signals and
 * `approveRestore`/`cancelRestore` updates. A decision counts only while the workflow waits for one,
 * with a name, as the first decision, and (four eyes) an approval not from the requester. Any
 * other decision changes nothing: it is kept in the workflow's state (`decisions` query), recorded
 * through `onRefused`, and an update is answered with the reason.
 */
export function approvalGate(what: string, rules: GateRules) {
  // Runs from before these checks took the first decision as it came (kept for replay).
  const checked = patched('decision-checks');
  let verdict: Verdict | undefined;
  const decisions: DecisionRecord[] = [];
  let refusals = 0;

  const refusal = (kind: DecisionRecord['decision'], d: Decision | undefined): string | undefined => {
    if (!d || typeof d.by !== 'string' || !d.by.trim()) return 'a decision needs a name: {"by":"alice","reason":"..."}';
    const badName = personNameProblem(d.by);
    if (badName) return badName;
    if (verdict) return `this ${what} was already ${verdict.decision} by ${verdict.by}`;
    const why = rules.notReady();
    if (why) return why;
    const requester = rules.fourEyesRequester();
    if (kind === 'approve' && requester !== undefined && samePerson(requester, d.by)) {
      return `${requester} asked for this ${what}; its approval must come from someone else (four eyes)`;
    }
    return undefined;
  };

  /** Takes a decision if it counts; otherwise records it and returns why it did not. */
  const take = async (kind: DecisionRecord['decision'], d: Decision | undefined, via: DecisionRecord['via']): Promise<string | undefined> => {
    const refused = refusal(kind, d);
    const record: DecisionRecord = {
      decision: kind,
      by: typeof d?.by === 'string' ? d.by.trim().slice(0, 100) : '',
      ...(typeof d?.reason === 'string' && { reason: d.reason.slice(0, 500) }),
      at: new Date().toISOString(),
      via,
      state: rules.state(),
      counted: !refused,
      ...(refused && { refused }),
    };
    decisions.push(record);
    if (!refused) {
      verdict = { by: record.by, reason: d!.reason, decision: kind === 'approve' ? 'approved' : 'cancelled' };
      return undefined;
    }
    const n = ++refusals;
    // Recorded even when the workflow is being cancelled; a failed record does not fail the workflow.
    await CancellationScope.nonCancellable(() => rules.onRefused(record, n)).catch(() => undefined);
    return refused;
  };

  setHandler(decisionsQuery, () => decisions);
  if (checked) {
    setHandler(approveSignal, async (d) => void (await take('approve', d, 'signal')));
    setHandler(cancelSignal, async (d) => void (await take('cancel', d, 'signal')));
    const answer = (kind: DecisionRecord['decision']) => async (d: Decision) => {
      // Refused in the handler, not a validator, so that the refusal is in the history and the audit trail too.
      const refused = await take(kind, d, 'update');
      if (refused) throw ApplicationFailure.nonRetryable(refused, 'DecisionRefused');
      return `${kind === 'approve' ? 'approved' : 'cancelled'} by ${verdict!.by}`;
    };
    setHandler(approveUpdate, answer('approve'));
    setHandler(cancelUpdate, answer('cancel'));
  } else {
    const decide = (kind: Verdict['decision']) => (d: Decision) => {
      verdict ??= { by: String(d?.by ?? 'unknown'), reason: d?.reason, decision: kind };
    };
    const validator = (d: Decision) => {
      if (!d || typeof d.by !== 'string' || !d.by.trim()) throw new Error('a decision needs a name: {"by":"alice","reason":"..."}');
      if (verdict) throw new Error(`this ${what} was already ${verdict.decision} by ${verdict.by}`);
      const why = rules.notReady();
      if (why) throw new Error(why);
    };
    setHandler(approveSignal, decide('approved'));
    setHandler(cancelSignal, decide('cancelled'));
    setHandler(approveUpdate, (d) => (decide('approved')(d), `approved by ${d.by}`), { validator });
    setHandler(cancelUpdate, (d) => (decide('cancelled')(d), `cancelled by ${d.by}`), { validator });
  }
  return {
    decisions: () => decisions,
    /** The decision, or a timed-out one when nobody decided within `timeout`. */
    async wait(timeout: Duration): Promise<Decision & { decision: Verdict['decision'] | 'timed out' }> {
      const decided = await condition(() => verdict !== undefined, timeout);
      return decided ? verdict! : { by: 'timeout', reason: `no decision within ${timeout}`, decision: 'timed out' };
    },
  };
}

/** Before a workflow ends: lets decisions still being recorded finish (even when it is cancelled). */
export function handlersFinished(): Promise<void> {
  return CancellationScope.nonCancellable(() => condition(allHandlersFinished));
}

/** The audit entry of a decision that did not count, e.g. action `restore.approve-refused`. */
export function refusedDecisionEvent(prefix: string, record: DecisionRecord, extra: { database?: string; backupId?: string } = {}) {
  return {
    actor: record.by || '(no name)',
    action: `${prefix}.${record.decision}-refused`,
    status: 'refused',
    ...extra,
    details: { via: record.via, state: record.state, refused: record.refused, reason: record.reason },
  };
}
