import type { RestorePlan, RestoreWorkflowResult } from '../../workflows/definitions';
import { formatBytes, formatDuration } from './output';

export function describePlan(plan: RestorePlan): string {
  return (
    `Plan: ${plan.summary}\n` +
    `  backup    ${plan.backupId} (${plan.backupType}, ${formatDuration(plan.backupAgeMs)} old, ${formatBytes(plan.backupStoredBytes)} stored, read back OK)\n` +
    `  target    ${plan.target.label} (${plan.target.exists ? `exists, ${formatBytes(plan.target.sizeBytes ?? 0)}` : 'will be created'}${plan.target.production ? ', production' : ''})\n` +
    `  tables    ${plan.tables.length} (${plan.tables.slice(0, 6).join(', ')}${plan.tables.length > 6 ? ', …' : ''})\n` +
    `  estimate  about ${formatDuration(plan.estimatedSeconds * 1000)}\n`
  );
}

export function describeRestoreResult(result: RestoreWorkflowResult): string {
  if (result.outcome === 'cancelled') {
    return `Restore cancelled (${result.decision?.decision} by ${result.decision?.by}${result.decision?.reason ? `: ${result.decision.reason}` : ''}). Nothing was changed.\n`;
  }
  const rto = result.rto!;
  return (
    `Restore verified: ${result.plan.summary}\n` +
    `  decision  ${result.decision?.decision} by ${result.decision?.by}\n` +
    `  tables    ${result.verification?.tables.length} with the row counts of the backup; checks: ${result.verification?.checks.map((c) => `${c.ok ? 'OK' : 'FAIL'} ${c.name}`).join('; ')}\n` +
    (result.snapshotId ? `  snapshot  ${result.snapshotId} (restore it to undo)\n` : '') +
    (result.previousDatabase ? `  previous  kept as database ${result.previousDatabase} (drop it when satisfied)\n` : '') +
    `  RTO       ${formatDuration(rto.approvalToVerifiedMs)} from approval, ${formatDuration(rto.requestToVerifiedMs)} from request (target < 30m: ${rto.met ? 'met' : 'MISSED'})\n`
  );
}
