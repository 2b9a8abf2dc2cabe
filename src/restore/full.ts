import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Manifest } from '../catalog/manifest';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { keyProviderFor } from '../crypto/keys';
import { IntegrityError } from '../errors';
import { openBackup } from '../backup/read-backup';
import { localStorageFor } from '../backup/repository';
import { runPipeline } from '../pipeline/run';
import { databaseExists, databaseOf, onDatabase, renameDatabase, withServer } from '../postgres/admin';
import { quoteIdent, resolveConnection, type ResolvedConnection } from '../postgres/connection';
import { runPgRestore } from '../postgres/pg-restore';

/** Below this, streaming into a single pg_restore beats staging a file for pg_restore -j. */
export const STAGE_FOR_PARALLEL_BYTES = 64 * 1024 * 1024;

export interface ScratchRestore {
  source: DatabaseConfig;
  manifest: Manifest;
  target: DatabaseConfig;
  scratch: string;
  schemaOnly: boolean;
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
}

/**
 * Restores a backup into a new database beside the target (same server). The target itself is not
 * touched; a leftover scratch database from a crashed attempt of this same restore is dropped first.
 */
export async function restoreIntoScratch(config: LifelineConfig, r: ScratchRestore): Promise<ResolvedConnection> {
  const conn = resolveConnection(r.target);
  await withServer(conn, async (client) => {
    if (await databaseExists(client, r.scratch)) await client.query(`DROP DATABASE ${quoteIdent(r.scratch)} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${quoteIdent(r.scratch)} TEMPLATE template0`);
  });
  const scratchConn = onDatabase(conn, r.scratch);
  const chain = await openBackup(localStorageFor(r.source), r.manifest, keyProviderFor(config));
  const ticker = setInterval(() => r.onProgress?.(chain.stored.bytes), 2000);
  const args = ['--no-owner', ...(r.schemaOnly ? ['--schema-only'] : [])];
  try {
    if (config.parallelJobs > 1 && r.manifest.sizes.rawBytes >= STAGE_FOR_PARALLEL_BYTES && !r.schemaOnly) {
      // pg_restore -j needs a seekable archive: stage the plain dump next to the repository.
      const dir = path.join(config.backupDir, '.staging');
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const staged = path.join(dir, `${r.scratch}.dump`);
      try {
        await runPipeline([...chain.stages, createWriteStream(staged, { mode: 0o600 })], r.signal);
        await runPgRestore({ conn: scratchConn, args: [...args, `--jobs=${config.parallelJobs}`], input: staged, signal: r.signal });
      } finally {
        rmSync(staged, { force: true });
      }
    } else {
      await runPgRestore({ conn: scratchConn, args, input: chain.stages, signal: r.signal });
    }
  } finally {
    clearInterval(ticker);
  }
  if (chain.raw.sha256() !== r.manifest.rawSha256) {
    throw new IntegrityError(`backup ${r.manifest.id} decrypted to an archive that differs from the one pg_dump wrote`);
  }
  return scratchConn;
}

export async function dropDatabaseIfExists(target: DatabaseConfig, name: string): Promise<void> {
  await withServer(resolveConnection(target), (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
}

/**
 * Puts the verified scratch database in the target's place by renaming: target → `previous`,
 * scratch → target. Idempotent, so a retry after a crash between the two renames finishes the job.
 */
export async function swapIn(target: DatabaseConfig, scratch: string, previous: string): Promise<{ previousKept: boolean }> {
  const conn = resolveConnection(target);
  const name = databaseOf(conn);
  return withServer(conn, async (client) => {
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
