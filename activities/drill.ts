import { Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { auditLogOf } from '../src/audit/audit-log';
import { findDatabase, type LifelineConfig } from '../src/config/config';
import { cleanupDrill, decryptForDrill, drillServer, fetchForDrill, pickDrillBackup, restoreForDrill, verifyDrill } from '../src/drill/drill';
import { randomBytes } from 'node:crypto';
import { onDatabase } from '../src/postgres/admin';
import { cancelQuery, diagnoseSessions } from '../src/postgres/waits';
import type { VerifyProgress } from '../src/restore/verify-restored';
import { heartbeatFromProgress } from './progress';
import { writeDrillReport } from '../src/drill/reports';
import { deliver } from '../src/notify';
import type { DrillReport } from '../workflows/definitions';
import { failuresTranslated } from './errors';

export function createDrillActivities(config: LifelineConfig, logger: Logger) {
  const db = (name: string) => findDatabase(config, name);
  return {
    pickDrillBackup: failuresTranslated(async (database: string) => pickDrillBackup(config, db(database))),
    fetchForDrill: failuresTranslated(async (database: string, drillId: string, backupId: string) => {
      const ctx = Context.current();
      return fetchForDrill(config, db(database), drillId, backupId, (bytes) => ctx.heartbeat({ phase: 'download', bytes }));
    }),
    // Each heartbeats from progress (bytes, tables, or its server session at work) and gets the
    // activity's cancellation: a cancelled or stalled drill leaves no zstd or pg_restore behind.
    decryptForDrill: failuresTranslated((drillId: string) =>
      heartbeatFromProgress({ what: `decrypting the backup of drill ${drillId}`, stallSeconds: config.timeouts.stallSeconds }, (report, signal) => decryptForDrill(config, drillId, signal, report)),
    ),
    restoreForDrill: failuresTranslated((database: string, drillId: string, scratch: string) => {
      const applicationName = `lifeline-pg_restore-${randomBytes(6).toString('hex')}`;
      const conn = onDatabase(drillServer(db(database)), scratch);
      return heartbeatFromProgress(
        {
          what: `the drill's restore into ${conn.label}`,
          stallSeconds: config.timeouts.stallSeconds,
          diagnose: () => diagnoseSessions(conn, { pids: [], program: { name: 'pg_restore', applicationName } }),
        },
        (report, signal) => restoreForDrill(config, db(database), drillId, scratch, { signal, applicationName, onProgress: report }),
      );
    }),
    verifyDrill: failuresTranslated((database: string, drillId: string, scratch: string) => {
      const conn = onDatabase(drillServer(db(database)), scratch);
      let last: VerifyProgress | undefined;
      return heartbeatFromProgress(
        {
          what: `verifying the drill's copy in ${conn.label}`,
          stallSeconds: config.timeouts.stallSeconds,
          diagnose: async () => (last?.command ? { busy: 'the check command runs (it has its own timeout)' } : diagnoseSessions(conn, { pids: last?.pid ? [last.pid] : [] })),
          onStalled: async () => void (last?.pid && (await cancelQuery(conn, last.pid))),
        },
        (report, signal) => verifyDrill(config, db(database), drillId, scratch, signal, (p) => report((last = p).done)),
      );
    }),
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
