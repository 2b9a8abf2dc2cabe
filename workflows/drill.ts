import { ApplicationFailure, CancellationScope, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import { DATABASE_NAME_PATTERN } from '../src/catalog/naming';
import { scratchName } from '../src/drill/naming';
import { drillProgressQuery, RTO_TARGET_MS, type DrillCheck, type DrillFetched, type DrillReport, type DrillWorkflowInput } from './definitions';
import { invalid, long, quick, rootMessage } from './steps';

const RPO_TARGET_MS = 24 * 3_600_000;

/**
 * The disaster-recovery drill (quarterly) and restore test (monthly): as if the server were gone,
 * take the newest backup from the offsite destination, get its key from the key provider, restore it
 * into a scratch database and check it; measure RTO by step and RPO. The scratch database is
 * dropped whatever happens, cancellation included; the source and every configured target are
 * never touched. A failed step, a failed check or a missed target fails the drill and raises a
 * critical alert that names the cause.
 */
export async function drillWorkflow(input: DrillWorkflowInput): Promise<DrillReport> {
  if (typeof input?.database !== 'string' || !DATABASE_NAME_PATTERN.test(input.database)) {
    throw invalid(`input.database ${JSON.stringify(input?.database)} is not a database name`);
  }
  const { database } = input;
  const drillId = workflowInfo().workflowId;
  const started = Date.now();
  const scratch = scratchName(database, new Date(started));
  const progress = { phase: 'download', drillId };
  setHandler(drillProgressQuery, () => progress);

  const steps: DrillReport['steps'] = [];
  let checks: DrillCheck[] = [];
  let backup: Omit<DrillFetched, 'ms'> | undefined;
  let failure: string | undefined;
  let cancelled: unknown;
  const step = async <T extends { ms: number }>(name: DrillReport['steps'][number]['name'], run: () => Promise<T>): Promise<T> => {
    progress.phase = name;
    try {
      const result = await run();
      steps.push({ name, ms: result.ms });
      return result;
    } catch (err) {
      if (isCancellation(err)) throw err;
      throw new Error(`${name} failed: ${rootMessage(err)}`);
    }
  };
  try {
    backup = await quick.pickDrillBackup(database);
    const { backupId } = backup;
    await step('download', () => long.fetchForDrill(database, drillId, backupId));
    await step('decrypt', () => long.decryptForDrill(drillId));
    await step('restore', () => long.restoreForDrill(database, drillId, scratch));
    checks = (await step('verify', () => long.verifyDrill(database, drillId, scratch))).checks;
    const failed = checks.filter((c) => !c.ok);
    if (failed.length) failure = `check failed: ${failed.map((c) => `${c.name}${c.detail ? ` (${c.detail})` : ''}`).join('; ')}`;
  } catch (err) {
    if (isCancellation(err)) cancelled = err;
    failure = isCancellation(err) ? 'cancelled' : rootMessage(err);
  }
  const verifiedAt = Date.now();

  return CancellationScope.nonCancellable(async () => {
    progress.phase = 'cleanup';
    let scratchDropped = false;
    try {
      await quick.cleanupDrill(database, drillId, scratch);
      scratchDropped = true;
    } catch (err) {
      failure ??= `cleanup failed: ${rootMessage(err)}`;
    }
    const rto = { ms: verifiedAt - started, targetMs: RTO_TARGET_MS, met: !failure && verifiedAt - started <= RTO_TARGET_MS };
    const rpo = backup && { ms: started - Date.parse(backup.takenAt), targetMs: RPO_TARGET_MS, met: started - Date.parse(backup.takenAt) <= RPO_TARGET_MS };
    if (!failure && !rto.met) failure = `RTO target missed: ${Math.round(rto.ms / 1000)} s to a verified database (target ${RTO_TARGET_MS / 60_000} min)`;
    if (!failure && rpo && !rpo.met) failure = `RPO target missed: backup ${backup!.backupId} is ${(rpo.ms / 3_600_000).toFixed(1)} h old (target 24 h)`;
    const report: DrillReport = {
      drillId,
      database,
      kind: input.kind ?? 'manual',
      requestedBy: input.requestedBy ?? 'schedule',
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date().toISOString(),
      passed: !failure,
      failure,
      backup,
      scratchDatabase: scratch,
      steps,
      checks,
      rto,
      rpo,
      scratchDropped,
    };
    progress.phase = 'report';
    await quick.recordDrill(report);
    progress.phase = report.passed ? 'passed' : 'failed';
    if (cancelled) throw cancelled;
    if (!report.passed) throw ApplicationFailure.nonRetryable(`drill of ${database} failed: ${failure}`, 'DrillFailed', report);
    return report;
  });
}
