import { auditLogOf, type AuditEvent, type AuditHead } from '../src/audit/audit-log';
import type { LifelineConfig } from '../src/config/config';
import { failuresTranslated, owningWorkflow } from './errors';

/**
 * What the workflow's history keeps of an append: the new head of the chain (seq and MAC, no
 * secret), so that a log cut back later contradicts the history too, and where it was anchored.
 */
export interface AuditRecorded extends AuditHead {
  anchoredIn: string[];
  /** Destinations the anchor could not be written to, with why (the audited action goes on). */
  anchorFailures: string[];
}

export function createAuditActivities(config: LifelineConfig) {
  return {
    /**
     * Appends to the audit trail. `key` names the event within its workflow run, so a retried
     * activity finds the entry it already wrote instead of writing a second one.
     */
    audit: failuresTranslated(async (key: string, event: Omit<AuditEvent, 'eventId'>): Promise<AuditRecorded> => {
      const execution = owningWorkflow();
      const { head, anchors } = await auditLogOf(config).record({
        ...event,
        eventId: `${execution?.workflowId ?? 'direct'}/${execution?.runId ?? ''}:${key}`,
        details: { ...event.details, ...(execution && { workflowId: execution.workflowId }) },
      });
      return { ...head, anchoredIn: anchors.written, anchorFailures: anchors.failed.map((f) => `${f.destination}: ${f.error}`) };
    }),
  };
}
