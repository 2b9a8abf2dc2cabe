import type { Client } from '@temporalio/client';
import { decodePayload } from '../temporal/data-converter';
import type { AuditHead } from './anchors';

/** A head the audit activity returned to a workflow, as its history keeps it. */
export interface RecordedHead extends AuditHead {
  time: string;
  /** Where it was found, for messages. */
  from: string;
}

const AUDIT_ACTIVITY = 'audit';

function asHead(value: unknown): AuditHead | undefined {
  const v = value as Partial<AuditHead> | undefined;
  // Runs from before the keyed chain returned only a number: nothing to compare.
  return v && typeof v === 'object' && Number.isInteger(v.seq) && typeof v.mac === 'string' ? { seq: v.seq!, mac: v.mac } : undefined;
}

/**
 * The audit heads in the histories of the workflows that started on this task queue in the last
 * `days` days: a second record of the chain's head, outside the repository, that `audit verify`
 * compares with the file like the offsite anchors.
 */
export async function headsInTemporalHistory(client: Client, taskQueue: string, days: number, now = new Date()): Promise<RecordedHead[]> {
  const since = new Date(now.getTime() - days * 86_400_000).toISOString();
  const heads: RecordedHead[] = [];
  const query = `TaskQueue = '${taskQueue.replace(/'/g, "''")}' AND StartTime > '${since}'`;
  for await (const w of client.workflow.list({ query })) {
    const history = await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
    const auditSteps = new Set<string>();
    for (const event of history.events ?? []) {
      if (event.activityTaskScheduledEventAttributes?.activityType?.name === AUDIT_ACTIVITY) auditSteps.add(String(event.eventId));
      const completed = event.activityTaskCompletedEventAttributes;
      const payload = completed?.result?.payloads?.[0];
      if (!completed || !payload || !auditSteps.has(String(completed.scheduledEventId))) continue;
      const head = asHead(await decodePayload(client, payload));
      const time = event.eventTime?.seconds ? new Date(Number(event.eventTime.seconds) * 1000).toISOString() : w.startTime.toISOString();
      if (head) heads.push({ ...head, time, from: `the history of workflow ${w.workflowId}` });
    }
  }
  return heads.sort((a, b) => a.seq - b.seq);
}
