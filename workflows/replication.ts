import { setHandler } from '@temporalio/workflow';
import { DATABASE_NAME_PATTERN } from '../src/catalog/naming';
import {
  replicationProgressQuery,
  type ReplicationOutcome,
  type ReplicationWorkflowInput,
  type ReplicationWorkflowResult,
} from './definitions';
import { cancellationRethrown, invalid, onLongQueue, quick, rootMessage } from './steps';

/**
 * Uploads heartbeat their multipart state; a retry after a worker crash or an unreachable
 * endpoint resumes from it. Retried for longer than other steps: S3 outages are usually brief. On the long
 * task queue, like dumps.
 */
const transfer = onLongQueue({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 6 },
});

/**
 * One activity per destination, all at once: each has its own retries, and one failing leaves
 * the others alone. Failures are returned (and announced), not thrown; a cancellation is.
 */
export async function replicateEverywhere(
  database: string,
  backupId: string,
  destinations: string[],
  onChange: (destination: string, status: string) => void = () => undefined,
): Promise<ReplicationOutcome[]> {
  const outcomes = await Promise.all(
    destinations.map(async (destination): Promise<ReplicationOutcome> => {
      onChange(destination, 'pending');
      try {
        const r = await transfer.replicateBackup(database, backupId, destination);
        onChange(destination, r.status);
        return { backupId, destination, status: r.status, location: r.location, bytes: r.bytes, partsReused: r.partsReused, durationMs: r.durationMs };
      } catch (err) {
        // A cancelled workflow stops here; its replication did not fail.
        cancellationRethrown(err);
        onChange(destination, 'failed');
        return { backupId, destination, status: 'failed', error: rootMessage(err) };
      }
    }),
  );
  const failed = outcomes.filter((o) => o.status === 'failed');
  if (failed.length) {
    await quick
      .notify({
        severity: 'warning',
        event: 'replication.failed',
        database,
        backupId,
        title: `Backup ${backupId} not replicated to ${failed.map((f) => f.destination).join(', ')}`,
        text: `${failed.map((f) => `${f.destination}: ${f.error}`).join('\n')}\nThe backup is verified locally. Run \`lifeline replicate --missing --db ${database}\` once the destination is reachable.`,
      })
      .catch(() => undefined);
  }
  return outcomes;
}

/** `lifeline replicate ID|--missing`: copies what destinations lack, one backup at a time. */
export async function replicationWorkflow(input: ReplicationWorkflowInput): Promise<ReplicationWorkflowResult> {
  if (typeof input?.database !== 'string' || !DATABASE_NAME_PATTERN.test(input.database)) {
    throw invalid(`input.database ${JSON.stringify(input?.database)} is not a database name`);
  }
  if (!input.missing && !input.backupIds?.length) throw invalid('give input.backupIds, or input.missing = true');
  const destinations = input.destinations?.length ? input.destinations : await quick.replicationDestinations();
  const work = input.missing
    ? await quick.findMissingReplicas(input.database, destinations)
    : input.backupIds!.map((backupId) => ({ backupId, destinations }));
  const progress = { done: 0, total: work.length, failed: 0 };
  setHandler(replicationProgressQuery, () => progress);
  const outcomes: ReplicationOutcome[] = [];
  for (const item of work) {
    const results = await replicateEverywhere(input.database, item.backupId, item.destinations);
    outcomes.push(...results);
    progress.done++;
    progress.failed += results.some((r) => r.status === 'failed') ? 1 : 0;
  }
  return { outcomes, failed: outcomes.filter((o) => o.status === 'failed').length };
}
