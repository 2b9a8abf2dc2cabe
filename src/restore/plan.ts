import { LOCAL, storageNamed } from '../backup/repository';
import { Catalog } from '../catalog/catalog';
import { verifyBackup } from '../backup/verify';
import { qualifiedName, type Manifest } from '../catalog/manifest';
import { findDatabase, type LifelineConfig } from '../config/config';
import { keyringFor } from '../crypto/keys';
import { LifelineError } from '../errors';
import { databaseExists, databaseOf, databaseSize, withServer } from '../postgres/admin';
import { resolveConnection } from '../postgres/connection';
import type { RestorePlan, RestoreWorkflowInput } from '../../workflows/definitions';
import { tableDataOf } from '../postgres/pg-restore-list';
import { backupTables } from './backup-tables';
import { selectBackup } from './select-backup';
import { identityRefusal } from './server-identity';
import { isUrl, resolveTarget } from './target';

/** Rough pg_restore speed for the estimate shown to approvers (single job, 2 cores). */
const RESTORE_BYTES_PER_SECOND = 40 * 1024 * 1024;

/** Maps requested names (`table` or `schema.table`) to the backup's tables; unknown ones fail here. */
export function resolveTables(manifest: Manifest, requested: string[]): string[] {
  const holds = manifest.tables.filter((t) => t.kind === 'table');
  const problems: string[] = [];
  const resolved = requested.map((name) => {
    // The whole schema.table first, then the bare table name: either may hold dots.
    const exact = holds.filter((t) => qualifiedName(t) === name);
    const matches = exact.length ? exact : holds.filter((t) => t.name === name);
    if (matches.length === 1) return qualifiedName(matches[0]!);
    const parent = manifest.tables.find((t) => t.kind === 'partitioned' && (qualifiedName(t) === name || t.name === name));
    problems.push(
      matches.length > 1
        ? `"${name}" is ambiguous (${matches.map(qualifiedName).join(', ')}): use schema.table`
        : parent
          ? `"${name}" is a partitioned table: name its partitions`
          : `"${name}" is not in backup ${manifest.id}`,
    );
    return '';
  });
  if (problems.length) {
    throw new LifelineError('UnknownTable', `${problems.join('; ')}. The backup holds: ${holds.map(qualifiedName).join(', ')}`);
  }
  return [...new Set(resolved)];
}

export interface PreparedRestore {
  plan: RestorePlan;
  manifest: Manifest;
}

/**
 * Everything that happens before a person is asked: pick the backup, read it back completely
 * (checksum, decryption, archive listing), check the request against it, look at the target.
 * Nothing is changed anywhere.
 */
export async function prepareRestore(config: LifelineConfig, input: RestoreWorkflowInput, onProgress?: (bytes: number) => void): Promise<PreparedRestore> {
  const source = findDatabase(config, input.database);
  const storage = storageNamed(config, source, input.storage ?? LOCAL);
  const keys = keyringFor(config);
  const manifest = await selectBackup(new Catalog(storage), source.name, { backup: input.backup, at: input.at }, keys);
  const mode = input.mode ?? 'full';
  const needsData = mode === 'tables' || mode === 'data-only';
  if (needsData && manifest.type === 'schema-only') {
    throw new LifelineError('InvalidInput', `backup ${manifest.id} is schema-only: it has no data for a ${mode} restore`);
  }
  if (mode === 'full' && manifest.type !== 'full' && manifest.type !== 'pre-restore') {
    throw new LifelineError('InvalidInput', `backup ${manifest.id} is ${manifest.type}; a full restore needs a full backup`);
  }
  const { toc } = await verifyBackup(storage, manifest, keys, { onProgress });

  const tables =
    mode === 'tables'
      ? resolveTables(manifest, input.tables ?? [])
      : manifest.tables.filter((t) => t.kind === 'table').map(qualifiedName);
  const missing = needsData ? backupTables(manifest, tables).filter((t) => !tableDataOf(toc, t, manifest.tables)).map(qualifiedName) : [];
  if (missing.length) throw new LifelineError('UnknownTable', `backup ${manifest.id} holds no data for ${missing.join(', ')}`);

  const target = await resolveTarget(config, input.target ?? source.name);
  const conn = resolveConnection(target);
  const dbName = databaseOf(conn);
  // A forced restore to a URL: its address matched no configured database that refuses force; its
  // server's identity must not either (a tunnel, a proxy or another address reaches the same server).
  const forceRefusal = input.force && target.forceRefusal === undefined && isUrl(input.target ?? '') ? await identityRefusal(config, conn) : target.forceRefusal;
  const { exists, sizeBytes } = await withServer(conn, async (client) => ({
    exists: await databaseExists(client, dbName),
    sizeBytes: await databaseSize(client, dbName),
  }));
  if (needsData && !exists) {
    throw new LifelineError('InvalidInput', `a ${mode} restore needs an existing target, and ${conn.label} does not exist`, {
      hint: 'restore in full mode to create it',
    });
  }
  const what =
    mode === 'full'
      ? `replace the whole database ${conn.label}`
      : mode === 'schema-only'
        ? `replace ${conn.label} with the schema alone (no rows)`
        : `replace the rows of ${tables.length} table(s) in ${conn.label}: ${tables.join(', ')}`;
  const plan: RestorePlan = {
    backupId: manifest.id,
    backupType: manifest.type,
    backupTakenAt: manifest.startedAt,
    backupAgeMs: Date.now() - Date.parse(manifest.startedAt),
    backupStoredBytes: manifest.sizes.storedBytes,
    backupRawBytes: manifest.sizes.rawBytes,
    mode,
    tables,
    target: {
      name: target.name,
      label: conn.label,
      exists,
      sizeBytes,
      production: target.production,
      allowForceRestore: target.allowForceRestore && forceRefusal === undefined,
      fourEyes: target.fourEyes,
      forceRefusal,
    },
    summary: `${what} with backup ${manifest.id} (taken ${manifest.startedAt})${exists ? ', after a pre-restore snapshot of it' : ''}.`,
    snapshotFirst: exists,
    estimatedSeconds: Math.ceil(15 + manifest.sizes.rawBytes / RESTORE_BYTES_PER_SECOND),
    backupVerified: true,
  };
  return { plan, manifest };
}
