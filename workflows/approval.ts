import type { Duration } from '@temporalio/common';
import { condition, setHandler } from '@temporalio/workflow';
import { approveSignal, approveUpdate, cancelSignal, cancelUpdate, type Decision } from './definitions';

export type Verdict = Decision & { decision: 'approved' | 'cancelled' };

/**
 * The person-in-the-loop step restores and large cleanups share: `approve`/`cancel` signals, and
 * `approveRestore`/`cancelRestore` updates whose validator answers the caller (a decision without a
 * name, a second decision, or one when nothing waits is refused). `notReady` says why a decision
 * cannot be taken now, or undefined when it can.
 */
export function approvalGate(what: string, notReady: () => string | undefined) {
  let verdict: Verdict | undefined;
  const decide = (kind: Verdict['decision']) => (d: Decision) => {
    verdict ??= { by: String(d?.by ?? 'unknown'), reason: d?.reason, decision: kind };
  };
  const validator = (d: Decision) => {
    if (!d || typeof d.by !== 'string' || !d.by.trim()) throw new Error('a decision needs a name: {"by":"alice","reason":"..."}');
    if (verdict) throw new Error(`this ${what} was already ${verdict.decision} by ${verdict.by}`);
    const why = notReady();
    if (why) throw new Error(why);
  };
  setHandler(approveSignal, decide('approved'));
  setHandler(cancelSignal, decide('cancelled'));
  setHandler(approveUpdate, (d) => (decide('approved')(d), `approved by ${d.by}`), { validator });
  setHandler(cancelUpdate, (d) => (decide('cancelled')(d), `cancelled by ${d.by}`), { validator });
  return {
    /** The decision, or a timed-out one when nobody decided within `timeout`. */
    async wait(timeout: Duration): Promise<Decision & { decision: Verdict['decision'] | 'timed out' }> {
      const decided = await condition(() => verdict !== undefined, timeout);
      return decided ? verdict! : { by: 'timeout', reason: `no decision within ${timeout}`, decision: 'timed out' };
    },
  };
}
