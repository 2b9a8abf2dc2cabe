import { randomBytes } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { catalogBackup } from '../src/backup/catalog-backup';
import { dumpToRepository } from '../src/backup/dump';
import { LOCAL, localStorageFor, storageNamed } from '../src/backup/repository';
import { Catalog } from '../src/catalog/catalog';
import { verifyBackup } from '../src/backup/verify';
import { findDatabase, type LifelineConfig } from '../src/config/config';
import { keyringFor } from '../src/crypto/keys';
import { onDatabase } from '../src/postgres/admin';
import { resolveConnection, type ResolvedConnection } from '../src/postgres/connection';
import { dataKeyFor } from '../src/backup/read-backup';
import { LifelineError } from '../src/errors';
import { isParts } from '../src/parts/parts-of';
import { createMissingRoles, missingGlobalHint, readGlobals } from '../src/restore/globals';
import { dropScratch, restoreIntoScratch, swapIn } from '../src/restore/full';
import { prepareRestore } from '../src/restore/plan';
import { restoreTables } from '../src/restore/tables';
import { forceGuard } from '../src/restore/server-identity';
import { isUrl, resolveTarget } from '../src/restore/target';
import { checkInPlace, verifyRestored, type VerifyProgress } from '../src/restore/verify-restored';
import { cancelQuery, diagnoseSessions } from '../src/postgres/waits';
import { heartbeatFromProgress } from './progress';
import type { RestorePlan, RestoreVerification, RestoreWorkflowInput } from '../workflows/definitions';
import { failuresTranslated, owningWorkflow } from './errors';

/** Which backup goes where: names only, resolved here against the worker's configuration. */
export interface RestoreRef {
  database: string;
  backupId: string;
  target: string;
  /** Where the backup is read from: `local` (default) or a destination name. */
  storage?: string;
  /** Restored with --force (no approval): a URL target is checked again where the restore acts. */
  forced?: boolean;
}

export function createRestoreActivities(config: LifelineConfig) {
  const storageOf = (ref: RestoreRef) => storageNamed(config, findDatabase(config, ref.database), ref.storage ?? LOCAL);
  // Re-read and authenticated at every step: the file may have changed while the restore waited.
  const manifestOf = (ref: RestoreRef) => new Catalog(storageOf(ref)).getAuthenticated(ref.backupId, keyringFor(config));
  // Only a forced restore to a URL depends on the target's identity (server-identity.ts).
  const guardFor = (target: string, forced: boolean | undefined, label: string) => (forced && isUrl(target) ? forceGuard(config, label) : Promise.resolve(undefined));
  const progress = (phase: string) => (bytes: number) => Context.current().heartbeat({ phase, bytesRead: bytes });

  return {
    planRestore: failuresTranslated(async (input: RestoreWorkflowInput): Promise<RestorePlan> => {
      return (await prepareRestore(config, input, progress('planning'))).plan;
    }),

    /** An ordinary backup of the target, type pre-restore, verified and catalogued under the target's name. */
    snapshotTarget: failuresTranslated(async (target: string, backupId: string): Promise<string> => {
      const ctx = Context.current();
      const db = await resolveTarget(config, target);
      const record = await dumpToRepository(
        config,
        db,
        { backupId, type: 'pre-restore', workflow: owningWorkflow() },
        { signal: ctx.cancellationSignal, onProgress: (p) => ctx.heartbeat(p) },
      );
      const { verification } = await verifyBackup(localStorageFor(db), record, keyringFor(config), {
        signal: ctx.cancellationSignal,
        jobs: config.parallelJobs,
        onProgress: progress('verifying snapshot'),
      });
      await catalogBackup(db, record, verification, 'pre-restore', keyringFor(config));
      return record.id;
    }),

    /** `withGlobals` (--with-globals; absent in runs from before it): the roles the backup uses that the server lacks are created first. */
    restoreIntoScratch: failuresTranslated(async (ref: RestoreRef, scratch: string, schemaOnly: boolean, withGlobals?: boolean): Promise<void> => {
      const ctx = Context.current();
      const storage = storageOf(ref);
      const manifest = await manifestOf(ref);
      const beforeRestore = withGlobals
        ? async (scratchConn: ResolvedConnection, signal?: AbortSignal) => {
            const dataKey = await dataKeyFor(storage, manifest, keyringFor(config));
            try {
              const globals = await readGlobals(storage, manifest, dataKey, signal);
              if (!globals) throw new LifelineError('InvalidInput', `backup ${manifest.id} holds no globals: restore it without --with-globals`);
              const outcome = await createMissingRoles(scratchConn, globals);
              ctx.log.info('globals of the backup on the target server', { ...outcome });
            } finally {
              dataKey.fill(0);
            }
          }
        : undefined;
      await restoreIntoScratch(config, {
        storage,
        manifest,
        target: await resolveTarget(config, ref.target),
        scratch,
        schemaOnly,
        signal: ctx.cancellationSignal,
        onProgress: progress('restoring'),
        beforeRestore,
      }).catch((err: unknown) => {
        throw missingGlobalHint(err, withGlobals === true);
      });
    }),

    restoreTables: failuresTranslated(async (ref: RestoreRef, tables: string[]): Promise<void> => {
      const target = await resolveTarget(config, ref.target);
      const conn = resolveConnection(target);
      const manifest = await manifestOf(ref);
      const refuseIdentities = await guardFor(ref.target, ref.forced, conn.label);
      // Bytes move until every part (or the whole file) is read; after that the foreign-key check runs in the restoring session.
      const applicationName = `lifeline-restore-tables-${randomBytes(6).toString('hex')}`;
      let pid: number | undefined;
      await heartbeatFromProgress(
        {
          what: `restoring ${tables.length} table(s) into ${conn.label}`,
          stallSeconds: config.timeouts.stallSeconds,
          // Parts backups restore over a node-postgres session (its pid); single-stream ones through psql (its application name).
          diagnose: () => diagnoseSessions(conn, isParts(manifest) ? { pids: pid === undefined ? [] : [pid] } : { pids: [], program: { name: 'psql', applicationName } }),
        },
        (report, signal) =>
          restoreTables(config, { storage: storageOf(ref), manifest, target, tables, signal, onProgress: report, applicationName, refuseIdentities, onSession: (p) => (pid = p) }),
      );
    }),

    /** Checks the restored data where it is: the scratch database before a swap, or the target. */
    verifyRestored: failuresTranslated(
      async (ref: RestoreRef, database: string | undefined, tables: string[], schemaOnly: boolean): Promise<RestoreVerification> => {
        const target = await resolveTarget(config, ref.target);
        const base = resolveConnection(target);
        const conn = database ? onDatabase(base, database) : base;
        const manifest = await manifestOf(ref);
        let last: VerifyProgress | undefined;
        return heartbeatFromProgress(
          {
            what: `verifying the restored data in ${conn.label}`,
            stallSeconds: config.timeouts.stallSeconds,
            diagnose: async () => (last?.command ? { busy: 'the check command runs (it has its own timeout)' } : diagnoseSessions(conn, { pids: last?.pid ? [last.pid] : [] })),
            onStalled: async () => void (last?.pid && (await cancelQuery(conn, last.pid))),
          },
          (report, signal) =>
            verifyRestored(conn, manifest, tables, { schemaOnly, checks: target.restoreChecks, signal, onProgress: (p) => report((last = p).done) }),
        );
      },
    ),

    swapIn: failuresTranslated(async (target: string, scratch: string, previous: string, forced?: boolean) => {
      const db = await resolveTarget(config, target);
      return swapIn(db, scratch, previous, await guardFor(target, forced, resolveConnection(db).label));
    }),

    checkInPlace: failuresTranslated(async (target: string): Promise<RestoreVerification['checks']> => {
      const db = await resolveTarget(config, target);
      return checkInPlace(resolveConnection(db), db.restoreChecks);
    }),

    dropScratch: failuresTranslated(async (target: string, scratch: string): Promise<void> => {
      await dropScratch(await resolveTarget(config, target), scratch);
    }),
  };
}
