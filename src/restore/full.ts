import { randomBytes } from 'node:crypto';
import type { Manifest } from '../catalog/manifest';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { keyringFor } from '../crypto/keys';
import { IntegrityError } from '../errors';
import { checkWhole, dataKeyFor, openBackup } from '../backup/read-backup';
import { isParts } from '../parts/parts-of';
import type { BackupStorage } from '../storage/storage';
import { databaseExists, databaseOf, dropDatabaseIfExists, onDatabase, renameDatabase, withServer } from '../postgres/admin';
import { quoteIdent, resolveConnection, type ResolvedConnection } from '../postgres/connection';
import { runPgRestore } from '../postgres/pg-restore';
import { diagnoseSessions } from '../postgres/waits';
import { StallWatch } from '../pipeline/stall';
import { restoreParts, type PartsRestore } from './parallel-restore';
import { forceGuardRefusal, identityDigest, systemIdentifier } from './server-identity';

export interface ScratchRestore {
  /** Where the backup is read from (local repository or a destination). */
  storage: BackupStorage;
  manifest: Manifest;
  target: DatabaseConfig;
  scratch: string;
  schemaOnly: boolean;
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
  /**
   * Runs once the scratch database exists, before anything of the backup is restored into it:
   * where a restore onto another server creates the roles the backup's objects name (--with-globals).
   */
  beforeRestore?: (scratch: ResolvedConnection, signal?: AbortSignal) => Promise<void>;
  /** A parts backup's restore phases as they end (benchmarks print them). */
  onPhase?: PartsRestore['onPhase'];
}

/**
 * Restores a backup into a new database beside the target (same server). The target itself is not
 * touched; a leftover scratch database from a crashed attempt of this same restore is dropped first.
 * A parts-format backup is restored in parallel (restoreParts, BACKUP_PARALLEL_JOBS); a single-stream
 * one streams into one pg_restore.
 */
export async function restoreIntoScratch(config: LifelineConfig, r: ScratchRestore): Promise<ResolvedConnection> {
  const conn = resolveConnection(r.target);
  await withServer(conn, async (client) => {
    await dropDatabaseIfExists(client, r.scratch);
    await client.query(`CREATE DATABASE ${quoteIdent(r.scratch)} TEMPLATE template0`);
  });
  const scratchConn = onDatabase(conn, r.scratch);
  await r.beforeRestore?.(scratchConn, r.signal);
  if (isParts(r.manifest)) {
    const dataKey = await dataKeyFor(r.storage, r.manifest, keyringFor(config));
    try {
      await restoreParts({
        storage: r.storage,
        record: r.manifest,
        dataKey,
        conn: scratchConn,
        jobs: config.parallelJobs,
        schemaOnly: r.schemaOnly,
        pgRestoreArgs: ['--no-owner'],
        stallSeconds: config.timeouts.stallSeconds,
        signal: r.signal,
        onProgress: r.onProgress,
        onPhase: r.onPhase,
      });
    } finally {
      dataKey.fill(0);
    }
    return scratchConn;
  }
  const chain = await openBackup(r.storage, r.manifest, keyringFor(config));
  // Heartbeats while backup bytes flow, or while pg_restore's session works (an index build reads
  // no input); a restore that does neither for BACKUP_STALL_TIMEOUT fails, naming what it waits on.
  const applicationName = `lifeline-pg_restore-${randomBytes(6).toString('hex')}`;
  const watch = new StallWatch({
    what: `the restore into ${scratchConn.label}`,
    stallSeconds: config.timeouts.stallSeconds,
    progress: () => chain.stored.bytes,
    onAlive: () => r.onProgress?.(chain.stored.bytes),
    diagnose: () => diagnoseSessions(scratchConn, { pids: [], program: { name: 'pg_restore', applicationName } }),
    signal: r.signal,
  });
  // Streamed into one pg_restore. pg_restore -j would need a staged copy, and measured it does not
  // pay: an archive pg_dump wrote to a pipe has no data offsets, so parallel workers rescan the
  // file (README, "Restores").
  try {
    await runPgRestore({
      conn: scratchConn,
      args: ['--no-owner', ...(r.schemaOnly ? ['--schema-only'] : [])],
      input: chain.stages,
      signal: watch.signal,
      applicationName,
    });
  } catch (err) {
    throw watch.reason(err);
  } finally {
    watch.stop();
  }
  checkWhole(chain, r.manifest, `backup ${r.manifest.id}`);
  return scratchConn;
}

export async function dropScratch(target: DatabaseConfig, scratch: string): Promise<void> {
  await withServer(resolveConnection(target), (client) => dropDatabaseIfExists(client, scratch));
}

/**
 * Puts the verified scratch database in the target's place by renaming: target → `previous`,
 * scratch → target. Idempotent, so a retry after a crash between the two renames finishes the job.
 * A forced restore to a URL passes forceGuard's digests: the session that renames refuses to act on
 * a configured database that does not allow force (its server's identity and the name it renames).
 */
export async function swapIn(target: DatabaseConfig, scratch: string, previous: string, refuseIdentities?: string[]): Promise<{ previousKept: boolean }> {
  const conn = resolveConnection(target);
  const name = databaseOf(conn);
  return withServer(conn, async (client) => {
    if (refuseIdentities?.includes(identityDigest({ systemId: await systemIdentifier(client), database: name }))) throw forceGuardRefusal(conn.label);
    const hasScratch = await databaseExists(client, scratch);
    const hasTarget = await databaseExists(client, name);
    if (!hasScratch) {
      if (hasTarget && (await databaseExists(client, previous))) return { previousKept: true }; // already swapped
      throw new IntegrityError(`restored database ${scratch} is gone before the swap; nothing was changed`, 'run the restore again');
    }
    if (hasTarget) await renameDatabase(client, name, previous);
    await renameDatabase(client, scratch, name);
    return { previousKept: hasTarget || (await databaseExists(client, previous)) };
  });
}
