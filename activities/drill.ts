import { Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { auditLogOf } from '../src/audit/audit-log';
import { findDatabase, type LifelineConfig } from '../src/config/config';
import { cleanupDrill, decryptForDrill, fetchForDrill, pickDrillBackup, restoreForDrill, verifyDrill } from '../src/drill/drill';
import { writeDrillReport } from '../src/drill/reports';
import { deliver } from '../src/notify';
import type { DrillReport } from '../workflows/definitions';
import { failuresTranslated, whileHeartbeating } from './errors';

export function createDrillActivities(config: LifelineConfig, logger: Logger) {
  const db = (name: string) => findDatabase(config, name);
  return {
    pickDrillBackup: failuresTranslated(async (database: string) => pickDrillBackup(config, db(database))),
    fetchForDrill: failuresTranslated(async (database: string, drillId: string, backupId: string) => {
      const ctx = Context.current();
      return fetchForDrill(config, db(database), drillId, backupId, (bytes) => ctx.heartbeat({ phase: 'download', bytes }));
    }),
    // The activity's cancellation reaches the zstd and pg_restore these run: a cancelled drill leaves no process behind.
    decryptForDrill: failuresTranslated((drillId: string) => whileHeartbeating('decrypt', () => decryptForDrill(config, drillId, Context.current().cancellationSignal))),
    restoreForDrill: failuresTranslated((database: string, drillId: string, scratch: string) =>
      whileHeartbeating('restore', () => restoreForDrill(config, db(database), drillId, scratch, Context.current().cancellationSignal)),
    ),
    verifyDrill: failuresTranslated((database: string, drillId: string, scratch: string) =>
      whileHeartbeating('verify', () => verifyDrill(config, db(database), drillId, scratch, Context.current().cancellationSignal)),
    ),
    cleanupDrill: failuresTranslated(async (database: string, drillId: string, scratch: string): Promise<void> => cleanupDrill(config, db(database), drillId, scratch)),

    /** Report files, the audit entry, and the notice: critical naming the cause when the drill failed. */
    recordDrill: failuresTranslated(async (report: DrillReport): Promise<string> => {
      const file = await writeDrillReport(config, report);
      await auditLogOf(config).append({
        eventId: `${report.drillId}:drill`,
        actor: report.requestedBy,
        action: 'drill',
        status: report.passed ? 'passed' : 'failed',
        database: report.database,
        backupId: report.backup?.backupId,
        sizeBytes: report.backup?.storedBytes,
        location: report.backup?.location,
        details: { kind: report.kind, rtoMs: report.rto.ms, rpoMs: report.rpo?.ms, failure: report.failure, report: file },
      });
      const rto = `RTO ${(report.rto.ms / 1000).toFixed(1)} s (target ${report.rto.targetMs / 60_000} min)`;
      const rpo = report.rpo ? `, RPO ${(report.rpo.ms / 3_600_000).toFixed(1)} h (target ${report.rpo.targetMs / 3_600_000} h)` : '';
      await deliver(config, logger, {
        severity: report.passed ? 'info' : 'critical',
        event: report.passed ? 'drill.passed' : 'drill.failed',
        database: report.database,
        backupId: report.backup?.backupId,
        title: report.passed ? `DR drill of ${report.database} passed` : `DR drill of ${report.database} FAILED${report.backup ? ` (backup ${report.backup.backupId})` : ''}`,
        text: `${report.failure ? `${report.failure}\n` : ''}${rto}${rpo}. Report: ${file}`,
      });
      return file;
    }),
  };
}
