import type { Notice } from '../notify/notifier';
import type { AnchorOutcome, AuditHead } from './anchors';

/**
 * The alert for an anchor write that found its seq anchored already with another MAC: the audit
 * log was cut back, or replaced together with its key file, and written again. The audited action
 * itself went through; the trail no longer matches what was anchored offsite.
 */
export function tamperingNotice(file: string, head: AuditHead, failures: AnchorOutcome['failed']): Notice {
  return {
    severity: 'critical',
    event: 'audit.tampered',
    title: `Audit trail rewritten: seq ${head.seq} is anchored offsite with another MAC`,
    text:
      `${file} wrote seq ${head.seq}, but ${failures.map((f) => f.destination).join(', ')} already anchor(s) that seq with another line:\n` +
      failures.map((f) => `- ${f.destination}: ${f.error}`).join('\n') +
      '\nRun `lifeline audit verify` and restore audit.jsonl and audit-key.json from a copy of the repository.',
  };
}
