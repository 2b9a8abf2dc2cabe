import {
  CancellationScope,
  isCancellation,
  log,
  patched,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { BACKUP_TYPES, backupId, DATABASE_NAME_PATTERN, type BackupType } from '../src/catalog/naming';
import {
  BackupDatabase,
  BackupId,
  BackupStatus,
  progressQuery,
  type BackupProgress,
  type BackupStatusValue,
  type BackupWorkflowInput,
  type BackupWorkflowResult,
  type ReplicationOutcome,
} from './definitions';
import { replicateEverywhere } from './replication';
import { cancellationRethrown, failureType, invalid, long, quick, rootMessage } from './steps';

/** Failures of the key provider: the backup could not be encrypted. */
const KEY_FAILURES = ['KeyInvalid', 'KeyDisabled', 'KeyAccessDenied', 'KeyNotFound', 'KeyNotConfigured', 'KeyServiceUnavailable', 'KeyServiceError', 'WrongKey'];

/**
 * The daily backup, as the runbook describes it: check the database → dump, compress, encrypt and
 * store → verify → catalog → notify. The backup id is fixed here, before any step runs, so a retried
 * step works on the same backup and never makes a second one.
 */
export async function backupWorkflow(input: BackupWorkflowInput): Promise<BackupWorkflowResult> {
  const database = input?.database;
  const type: BackupType = input?.type ?? 'full';
  const trigger = input?.trigger ?? 'manual';
  if (typeof database !== 'string' || !DATABASE_NAME_PATTERN.test(database)) {
    throw invalid(`input.database ${JSON.stringify(database)} is not a database name (letters, digits, "_" or "-")`);
  }
  if (!BACKUP_TYPES.includes(type)) {
    throw invalid(`input.type ${JSON.stringify(type)} is not one of ${BACKUP_TYPES.join(', ')}`);
  }

  const started = Date.now();
  const id = backupId(database, new Date(started), type);
  const progress: BackupProgress = { backupId: id, database, phase: 'preflight', startedAt: new Date(started).toISOString() };
  setHandler(progressQuery, () => progress);
  const status = (value: BackupStatusValue) =>
    upsertSearchAttributes([
      { key: BackupDatabase, value: database },
      { key: BackupId, value: id },
      { key: BackupStatus, value },
    ]);
  status('RUNNING');
  /** Where the catalogued backup is, once it is: a later failure or cancellation never undoes that. */
  let catalogued: string | undefined;

  try {
    await quick.checkDatabase(database);
    progress.phase = 'dumping';
    const record = await long.dumpDatabase(database, { backupId: id, type });
    progress.phase = 'verifying';
    status('VERIFYING');
    const verification = await long.verifyBackup(record);
    progress.phase = 'cataloguing';
    const location = await quick.catalogBackup(record, verification, trigger);
    catalogued = location;
    status('VERIFIED');

    // Workflows started before replication existed replay without it.
    let replication: ReplicationOutcome[] | undefined;
    if (patched('replication')) {
      progress.phase = 'replicating';
      const destinations = await quick.replicationDestinations();
      progress.replication = {};
      replication = await replicateEverywhere(database, id, destinations, (d, s) => (progress.replication![d] = s));
    }

    // Size against the previous backup, free space: alerts of their own, never a failed backup.
    if (patched('alerts')) await quick.assessBackup(database, id).catch(cancellationRethrown);

    progress.phase = 'notifying';
    const sent = await quick.notify({
      severity: 'info',
      event: 'backup.succeeded',
      database,
      backupId: id,
      title: `Backup ${id} verified`,
      text:
        `${type} backup of ${database}: ${record.sizes.rawBytes} bytes dumped, ${record.sizes.storedBytes} stored at ${location}.` +
        (replication?.length ? ` Replicated: ${replication.map((r) => `${r.destination} ${r.status}`).join(', ')}.` : ''),
    });
    progress.phase = 'done';
    return {
      backupId: id,
      database,
      type,
      location,
      rawBytes: record.sizes.rawBytes,
      storedBytes: record.sizes.storedBytes,
      sha256: record.sha256,
      durationMs: Date.now() - started,
      notified: sent.delivered,
      ...(replication && { replication }),
    };
  } catch (err) {
    const reached = progress.phase;
    progress.phase = 'failed';
    progress.error = rootMessage(err);
    // Notices say what was reached: a catalogued backup stays verified whatever fails after it.
    const worded = patched('notice-from-state-reached');
    const cancelled = worded && isCancellation(err);
    const kept = worded ? catalogued : undefined;
    if (!kept) status('FAILED');
    log.error(cancelled ? 'backup cancelled' : 'backup failed', { backupId: id, error: progress.error });
    // Runs even when the workflow was cancelled: nothing half-written stays behind (a catalogued
    // backup is never removed), and someone hears about it.
    await CancellationScope.nonCancellable(async () => {
      await quick.discardBackup(database, id).catch(() => undefined);
      if (patched('audit-trail')) {
        await quick
          .audit('backup.failed', { actor: trigger.replace(/^manual:/, ''), action: 'backup', status: cancelled ? 'cancelled' : 'failed', database, backupId: id, details: { error: progress.error } })
          .catch(() => undefined);
      }
      const encryption = KEY_FAILURES.includes(failureType(err) ?? '');
      const unreplicated = Object.entries(progress.replication ?? {}).filter(([, s]) => s !== 'replicated').map(([d]) => d);
      const afterwards = kept
        ? `The backup is verified and catalogued at ${kept}` +
          (unreplicated.length ? `; it was not replicated to ${unreplicated.join(', ')} (run \`lifeline replicate --missing --db ${database}\`).` : '.')
        : `Cancelled while ${reached}: no backup was kept, and what the run had written is removed.`;
      await quick
        .notify({
          severity: cancelled || kept ? 'warning' : 'critical',
          event: cancelled ? 'backup.cancelled' : encryption ? 'encryption.failed' : 'backup.failed',
          database,
          backupId: id,
          title: cancelled
            ? `Backup ${kept ? id : `of ${database}`} cancelled${kept ? ' after it was verified' : ''}`
            : kept
              ? `Backup ${id} verified, but a later step failed`
              : encryption
                ? `Backup of ${database} FAILED: encryption key unusable`
                : `Backup of ${database} FAILED`,
          text: cancelled
            ? `${afterwards}\nWorkflow ${workflowInfo().workflowId}.`
            : kept
              ? `${progress.error}\n${afterwards}\nWorkflow ${workflowInfo().workflowId}. Check the worker log.`
              : `${progress.error}\nWorkflow ${workflowInfo().workflowId}. Check the worker log, then run \`lifeline backup --db ${database}\`.`,
        })
        .catch(() => undefined);
    });
    throw err;
  }
}
