import { CancellationScope, isCancellation, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import {
  keyRotationProgressQuery,
  type KeyRotationProgress,
  type KeyRotationWorkflowInput,
  type KeyRotationWorkflowResult,
} from './definitions';
import { long, quick, rootMessage } from './steps';

const BATCH = 25;

/**
 * Quarterly key rotation: a new master key becomes the one new backups use, then every backup's
 * data key, everywhere it is kept, is re-wrapped under it (the data is not re-encrypted). The
 * rotation id is the workflow id, so a retried step finds what it already did; a re-run skips
 * backups already under the new key.
 */
export async function keyRotationWorkflow(input: KeyRotationWorkflowInput = {}): Promise<KeyRotationWorkflowResult> {
  const started = Date.now();
  const rotationId = workflowInfo().workflowId;
  const progress: KeyRotationProgress = { phase: 'rotating', total: 0, done: 0 };
  setHandler(keyRotationProgressQuery, () => progress);
  try {
    const { previousKeyId, keyId } = await quick.rotateMasterKey(rotationId);
    Object.assign(progress, { previousKeyId, keyId, phase: 'listing' });
    const work: { target: { database: string; storage: string }; ids: string[] }[] = [];
    for (const target of await quick.rotationTargets()) {
      const ids = await quick.backupsToRewrap(target, keyId);
      work.push({ target, ids });
      progress.total += ids.length;
    }
    progress.phase = 'rewrapping';
    const result: KeyRotationWorkflowResult = { previousKeyId, keyId, rewrapped: 0, alreadyCurrent: 0, byPlace: {}, durationMs: 0 };
    for (const { target, ids } of work) {
      for (let i = 0; i < ids.length; i += BATCH) {
        const batch = ids.slice(i, i + BATCH);
        const counts = await long.rewrapBackups(target, batch, keyId, rotationId);
        result.rewrapped += counts.rewrapped;
        result.alreadyCurrent += counts.alreadyCurrent;
        const place = `${target.storage}/${target.database}`;
        result.byPlace[place] = (result.byPlace[place] ?? 0) + counts.rewrapped;
        progress.done += batch.length;
      }
    }
    progress.phase = 'done';
    result.durationMs = Date.now() - started;
    if (patched('audit-trail')) {
      await quick.audit('key.rotation', {
        actor: input.requestedBy ?? 'schedule',
        action: 'key.rotation',
        status: 'rotated',
        details: { previousKeyId, keyId, rewrapped: result.rewrapped, alreadyCurrent: result.alreadyCurrent, byPlace: result.byPlace },
      });
    }
    await quick.notify({
      severity: 'info',
      event: 'keys.rotated',
      title: `Master key rotated to ${keyId}`,
      text: `Requested by ${input.requestedBy ?? 'schedule'}. ${result.rewrapped} backup keys re-wrapped (${result.alreadyCurrent} already current). ${previousKeyId} stays available until no backup uses it (\`lifeline keys status\`).`,
    });
    return result;
  } catch (err) {
    const reached = progress.phase;
    progress.phase = 'failed';
    const failure = {
      severity: 'critical' as const,
      event: 'keys.rotation-failed',
      title: 'Key rotation FAILED',
      text: `${rootMessage(err)}\nEvery backup still opens with the key it used before. Fix the cause and run \`lifeline keys rotate\` again.`,
    };
    // Histories from before this rule replay as they ran: unshielded, worded the old way.
    if (!patched('notice-from-state-reached')) {
      await quick.notify(failure).catch(() => undefined);
      throw err;
    }
    const cancelled = isCancellation(err);
    const { previousKeyId, keyId } = progress;
    // What was reached: before the new key existed nothing changed; after, some backups may be re-wrapped.
    const state = !keyId
      ? 'No new master key was made; nothing changed.'
      : `${keyId} is the master key for new backups; ${progress.done} of ${progress.total} backup keys were processed (re-wrapped under ${keyId}), ` +
        `the others are still wrapped under ${previousKeyId}. Both keys stay available, so every backup still opens.`;
    // Sent even when the workflow was cancelled.
    await CancellationScope.nonCancellable(() =>
      quick
        .notify({
          ...failure,
          ...(cancelled && { severity: 'warning' as const, event: 'keys.rotation-cancelled', title: `Key rotation cancelled while ${reached}` }),
          text: `${cancelled ? 'Cancelled.' : rootMessage(err)}\n${state} Run \`lifeline keys rotate\` again to finish.`,
        })
        .catch(() => undefined),
    );
    throw err;
  }
}
