import { auditLogOf, type AuditEvent } from '../src/audit/audit-log';
import type { LifelineConfig } from '../src/config/config';
import { failuresTranslated, owningWorkflow } from './errors';

export function createAuditActivities(config: LifelineConfig) {
  return {
    /**
     * Appends to the audit trail. `key` names the event within its workflow run, so a retried
     * activity finds the entry it already wrote instead of writing a second one.
     */
    audit: failuresTranslated(async (key: string, event: Omit<AuditEvent, 'eventId'>): Promise<number> => {
      const execution = owningWorkflow();
      const entry = await auditLogOf(config).append({
        ...event,
        eventId: `${execution?.workflowId ?? 'direct'}/${execution?.runId ?? ''}:${key}`,
        details: { ...event.details, ...(execution && { workflowId: execution.workflowId }) },
      });
      return entry.seq;
    }),
  };
}
