import { LOCAL, storageNamed } from '../backup/repository';
import { Catalog } from '../catalog/catalog';
import { verifyBackup } from '../backup/verify';
import { qualifiedName, type Manifest } from '../catalog/manifest';
import { findDatabase, type LifelineConfig } from '../config/config';
import { keyringFor, type Keyring } from '../crypto/keys';
import { LifelineError } from '../errors';
import { databaseExists, databaseOf, databaseSize, withServer } from '../postgres/admin';
import { resolveConnection, type ResolvedConnection } from '../postgres/connection';
import type { RestorePlan, RestoreWorkflowInput } from '../../workflows/definitions';
import { tableDataOf } from '../postgres/pg-restore-list';
import { backupTables, leafTables } from './backup-tables';
import { dataKeyFor } from '../backup/read-backup';
import { isParts } from '../parts/parts-of';
import type { BackupStorage } from '../storage/storage';
import { globalsPartOf, missingGlobals, readGlobals } from './globals';
import { readBackParts } from './read-back-parts';
import { partsToLoad } from './table-parts';
import { planName, resolveTableRequests } from './table-names';
import { requireRestoreTool } from './tool-version';
import { selectBackup } from './select-backup';
import { identityRefusal } from './server-identity';
import { isUrl, resolveTarget } from './target';

/** Rough pg_restore speed for the estimate shown to approvers (single job, 2 cores). */
const RESTORE_BYTES_PER_SECOND = 40 * 1024 * 1024;

/**
 * Maps requested values (as the plan prints them, pg_dump's spelling, or a bare table name) to the
 * backup's tables and partitioned parents, as the plan's names; unknown and ambiguous ones fail here.
 */
export function resolveTables(manifest: Manifest, requested: string[]): string[] {
  return resolveTableRequests(manifest, requested).map((t) => planName(t, manifest.tables));
}

/** "public.payment (partitioned: 66 partitions)": what a named partitioned parent stands for. */
function describeTables(manifest: Manifest, names: string[]): string {
  return backupTables(manifest, names)
    .map((t) => (t.kind === 'partitioned' ? `${planName(t, manifest.tables)} (partitioned: ${leafTables(manifest, [t]).length} partitions)` : planName(t, manifest.tables)))
    .join(', ');
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
  if (input.withGlobals && mode !== 'full' && mode !== 'schema-only') {
    throw new LifelineError('InvalidInput', `--with-globals goes with a full or schema-only restore; a ${mode} restore replaces rows of existing tables and needs no roles`);
  }
  const globalsPart = globalsPartOf(manifest);
  if (input.withGlobals && !globalsPart) {
    throw new LifelineError('InvalidInput', `backup ${manifest.id} holds no globals (roles and tablespaces): it was taken before backups recorded them, or in the stream format`, {
      hint: 'restore without --with-globals (create the roles the restore needs by hand), or use a newer backup',
    });
  }

  // Names first: a misspelt table is refused before anything is read.
  const tables =
    mode === 'tables'
      ? resolveTables(manifest, input.tables ?? [])
      : manifest.tables.filter((t) => t.kind === 'table').map((t) => planName(t, manifest.tables));
  const leaves = needsData ? leafTables(manifest, backupTables(manifest, tables)) : [];
  // A parts backup's rows restore over one session of our own: only those tables' parts are read, now and then.
  const partsOnly = isParts(manifest) && needsData;
  if (!partsOnly) await requireRestoreTool(manifest);
  let restoredRawBytes = manifest.sizes.rawBytes;
  if (partsOnly) {
    const parts = partsToLoad(manifest, leaves).flatMap((t) => t.parts);
    restoredRawBytes = parts.reduce((n, p) => n + p.rawBytes, 0);
    const dataKey = await dataKeyFor(storage, manifest, keys);
    await readBackParts(storage, manifest, dataKey, parts, { jobs: config.parallelJobs, onProgress }).finally(() => dataKey.fill(0));
  } else {
    const { toc } = await verifyBackup(storage, manifest, keys, { onProgress, jobs: config.parallelJobs });
    const missing = needsData ? leaves.filter((t) => !tableDataOf(toc, t, manifest.tables)).map(qualifiedName) : [];
    if (missing.length) throw new LifelineError('UnknownTable', `backup ${manifest.id} holds no data for ${missing.join(', ')}`);
  }

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
  const globals = globalsPart && !needsData ? await globalsOnTarget(storage, manifest, keys, conn, input.withGlobals === true) : undefined;
  const what =
    mode === 'full'
      ? `replace the whole database ${conn.label}`
      : mode === 'schema-only'
        ? `replace ${conn.label} with the schema alone (no rows)`
        : mode === 'tables'
          ? `replace the rows of ${tables.length} table(s) in ${conn.label}: ${describeTables(manifest, tables)}`
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
    summary: `${what} with backup ${manifest.id} (taken ${manifest.startedAt})${exists ? ', after a pre-restore snapshot of it' : ''}.${globals?.note ? ` ${globals.note}` : ''}`,
    snapshotFirst: exists,
    estimatedSeconds: Math.ceil(15 + restoredRawBytes / RESTORE_BYTES_PER_SECOND),
    backupVerified: true,
    ...(globals && { globals: globals.plan }),
  };
  return { plan, manifest };
}

/**
 * What the target server lacks of the roles and tablespaces the backup uses, for the approver: with
 * --with-globals the roles will be created; without, a restore that grants to them fails.
 */
async function globalsOnTarget(storage: BackupStorage, manifest: Manifest, keys: Keyring, conn: ResolvedConnection, create: boolean): Promise<{ plan: NonNullable<RestorePlan['globals']>; note?: string }> {
  const dataKey = await dataKeyFor(storage, manifest, keys);
  const globals = await readGlobals(storage, manifest, dataKey).finally(() => dataKey.fill(0));
  const missing = globals ? await missingGlobals(conn, globals) : { roles: [], tablespaces: [] };
  const notes: string[] = [];
  if (missing.roles.length) {
    notes.push(
      create
        ? `Roles the backup uses that the target server lacks will be created first (no password, no SUPERUSER, REPLICATION or BYPASSRLS): ${missing.roles.join(', ')}.`
        : `Roles the backup uses do not exist on the target server: ${missing.roles.join(', ')}; the restore fails where the schema grants to them (add --with-globals to create them first).`,
    );
  }
  if (missing.tablespaces.length) {
    notes.push(`Tablespaces the backup uses do not exist on the target server: ${missing.tablespaces.join(', ')}; the restore fails on any object stored in them (create them first: CREATE TABLESPACE … LOCATION …).`);
  }
  return { plan: { missingRoles: missing.roles, missingTablespaces: missing.tablespaces, createRoles: create }, note: notes.join(' ') || undefined };
}
