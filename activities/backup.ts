import { Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { catalogBackup as publishManifest, discardBackup as removeLeftovers } from '../src/backup/catalog-backup';
import { dumpToRepository, type DumpRequest } from '../src/backup/dump';
import { localStorageFor } from '../src/backup/repository';
import { verifyBackup as readBackBackup } from '../src/backup/verify';
import type { DumpRecord, Verification } from '../src/catalog/manifest';
import { findDatabase, type LifelineConfig } from '../src/config/config';
import { keyProviderFor, keyringFor } from '../src/crypto/keys';
import { withConnection, resolveConnection } from '../src/postgres/connection';
import { deliver, type Notice } from '../src/notify';
import { auditLogOf } from '../src/audit/audit-log';
import { failuresTranslated, owningWorkflow } from './errors';

/** `manual:alice` → alice; `schedule` stays. */
const actorOf = (trigger: string) => trigger.replace(/^manual:/, '');

export interface PreflightResult {
  serverVersion: string;
  databaseBytes: number;
  keyId: string;
}

/**
 * The backup steps. Each is thin: it resolves names to configuration on the worker (where the
 * secrets are), reports progress as heartbeats, and calls the library in src/.
 */
export function createBackupActivities(config: LifelineConfig, logger: Logger) {
  return {
    /** Fails fast, before any dump, on what no retry can fix: credentials, database name, key file. */
    checkDatabase: failuresTranslated(async (database: string): Promise<PreflightResult> => {
      const db = findDatabase(config, database);
      const keyId = await keyProviderFor(config).currentKeyId();
      const info = await withConnection(resolveConnection(db), async (client) => {
        const { rows } = await client.query<{ v: string; n: string }>(
          'SELECT current_setting(\'server_version\') AS v, pg_database_size(current_database()) AS n',
        );
        return { serverVersion: rows[0]!.v.split(' ')[0]!, databaseBytes: Number(rows[0]!.n) };
      });
      return { ...info, keyId };
    }),

    dumpDatabase: failuresTranslated(async (database: string, request: Omit<DumpRequest, 'workflow'>): Promise<DumpRecord> => {
      const ctx = Context.current();
      return dumpToRepository(
        config,
        findDatabase(config, database),
        { ...request, workflow: owningWorkflow() },
        { signal: ctx.cancellationSignal, onProgress: (p) => ctx.heartbeat(p) },
      );
    }),

    verifyBackup: failuresTranslated(async (record: DumpRecord): Promise<Verification> => {
      const ctx = Context.current();
      const storage = localStorageFor(findDatabase(config, record.database));
      const { verification } = await readBackBackup(storage, record, keyringFor(config), {
        signal: ctx.cancellationSignal,
        stallSeconds: config.timeouts.stallSeconds,
        jobs: config.parallelJobs,
        onProgress: (bytesRead) => ctx.heartbeat({ phase: 'verifying', bytesRead }),
      });
      return verification;
    }),

    /** Publishes the manifest and records the backup and its verification in the audit trail. */
    catalogBackup: failuresTranslated(async (record: DumpRecord, verification: Verification, trigger: string): Promise<string> => {
      const db = findDatabase(config, record.database);
      const manifest = await publishManifest(db, record, verification, trigger, keyringFor(config));
      const location = localStorageFor(db).describe(manifest.object.key);
      const audit = auditLogOf(config);
      const common = { actor: actorOf(trigger), database: record.database, backupId: record.id, sizeBytes: record.sizes.storedBytes, location, checksum: record.sha256 };
      await audit.append({ ...common, eventId: `${record.id}:backup`, action: 'backup', status: 'verified', details: { type: record.type, rawBytes: record.sizes.rawBytes, keyId: record.encryption.keyId } });
      await audit.append({ ...common, eventId: `${record.id}:verification`, action: 'verification', status: 'passed', details: { method: verification.method, durationMs: verification.durationMs } });
      return location;
    }),

    discardBackup: failuresTranslated(async (database: string, backupId: string): Promise<string[]> => {
      return removeLeftovers(config, database, backupId);
    }),

    /**
     * Sends to every configured channel (each retries its own delivery). One failing channel does
     * not stop the others, and is reported rather than retried here, which would repeat the rest.
     */
    notify: failuresTranslated(async (notice: Notice): Promise<{ delivered: string[]; failed: string[] }> => {
      return deliver(config, logger, notice);
    }),
  };
}
