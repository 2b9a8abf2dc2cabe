import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { checkWhole, dataKeyFor, openBackup } from '../backup/read-backup';
import { storageNamed } from '../backup/repository';
import { authenticateManifest } from '../catalog/authenticate';
import { Catalog } from '../catalog/catalog';
import { readKeyEnvelope, writeKeyEnvelope } from '../catalog/key-envelope';
import { parseManifest, type Manifest } from '../catalog/manifest';
import { MANIFEST_SUFFIX, siblingKey } from '../catalog/naming';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { HEADER_BYTES, decodeHeader } from '../crypto/format';
import { keyringFor, type Keyring } from '../crypto/keys';
import { partKey } from '../crypto/part-key';
import { isParts, partObjectKeyOf, storedObjects } from '../parts/parts-of';
import { runPool } from '../parts/pool';
import { partFailure, partWhere } from '../parts/read-part';
import { IntegrityError, LifelineError } from '../errors';
import { Meter } from '../pipeline/meter';
import { dropDatabaseIfExists, onDatabase, withServer } from '../postgres/admin';
import { quoteIdent, resolveConnection, withConnection, type ResolvedConnection } from '../postgres/connection';
import { runPgRestore } from '../postgres/pg-restore';
import { tableChecksum } from '../postgres/snapshot';
import { restoreParts } from '../restore/parallel-restore';
import { verifyRestored, type VerifyProgress } from '../restore/verify-restored';
import { backendPid } from '../postgres/waits';
import { LocalStorage } from '../storage/local';
import { checkDir, createFile, ensureDir, remove } from '../storage/safe-fs';
import type { DrillCheck, DrillFetched } from '../../workflows/definitions';

/**
 * A disaster-recovery drill as steps that can be timed apart: download the newest backup from the
 * offsite destination, decrypt it with a key from the key provider, restore it into a scratch
 * database, check it. Each step reads and writes a work folder `<BACKUP_DIR>/.drills/<drill id>/`,
 * whose folders are checked to be real ones (safe-fs.ts): the drill id of a scheduled run is predictable.
 */
export function drillWorkDir(config: LifelineConfig, drillId: string): string {
  return path.join(config.backupDir, '.drills', drillId.replace(/[^a-zA-Z0-9_-]/g, '_'));
}

/** The drill server: the configured one, or the source's own server. */
export function drillServer(db: DatabaseConfig): ResolvedConnection {
  return resolveConnection(db.drill.serverUrl ? { ...db, url: db.drill.serverUrl, passwordEnv: undefined } : db);
}

/** The work folder as local storage, after checking that it (and `.drills`) are real folders. */
async function workStorage(config: LifelineConfig, drillId: string): Promise<{ work: string; storage: LocalStorage }> {
  const work = drillWorkDir(config, drillId);
  const missing = () => new LifelineError('DrillStateMissing', `no work folder ${work}: the download step did not finish`);
  if (!(await checkDir(config.backupDir, work))) throw missing();
  return { work, storage: new LocalStorage('drill', work) };
}

async function localManifest(config: LifelineConfig, drillId: string): Promise<{ storage: LocalStorage; manifest: Manifest }> {
  const { work, storage } = await workStorage(config, drillId);
  const name = (await fs.readdir(work)).find((f) => f.endsWith(MANIFEST_SUFFIX));
  const body = name && (await storage.get(name));
  if (!name || !body) throw new LifelineError('DrillStateMissing', `no downloaded manifest in ${work}: the download step did not finish`);
  const manifest = parseManifest(body.toString('utf8'), path.join(work, name));
  return { storage, manifest };
}

/** The newest verified full backup in the drill's destination (the server is gone: nothing local counts). */
export async function pickDrillBackup(config: LifelineConfig, db: DatabaseConfig): Promise<Omit<DrillFetched, 'ms'>> {
  const source = storageNamed(config, db, db.drill.from);
  const { trusted, untrusted } = await new Catalog(source).authenticated(db.name, keyringFor(config));
  const manifest = trusted.filter((m) => m.type === 'full').at(-1);
  // A manifest that fails authentication and claims to be newer is named, not drilled around.
  const forged = untrusted.find((u) => u.manifest.type === 'full' && (!manifest || Date.parse(u.manifest.startedAt) > Date.parse(manifest.startedAt)));
  if (forged) throw forged.error;
  if (!manifest) throw new LifelineError('BackupNotFound', `no verified full backup of ${db.name} in ${source.location} (${db.drill.from}) to drill with`);
  return { backupId: manifest.id, takenAt: manifest.startedAt, location: source.describe(manifest.object.key), storedBytes: manifest.sizes.storedBytes };
}

/** Step 1: that backup, downloaded and checked against its SHA-256: every object of it (a parts backup's parts, BACKUP_PARALLEL_JOBS at a time). */
export async function fetchForDrill(config: LifelineConfig, db: DatabaseConfig, drillId: string, backupId: string, onBytes?: (n: number) => void): Promise<{ ms: number }> {
  const started = Date.now();
  const source = storageNamed(config, db, db.drill.from);
  const manifest = await new Catalog(source).getAuthenticated(backupId, keyringFor(config));
  const work = drillWorkDir(config, drillId);
  await remove(config.backupDir, work);
  await ensureDir(config.backupDir, work);
  const meters: Meter[] = [];
  const ticker = setInterval(() => onBytes?.(meters.reduce((n, m) => n + m.bytes, 0)), 2000);
  const objects = storedObjects(manifest).sort((a, b) => b.storedBytes - a.storedBytes);
  try {
    await runPool(objects, config.parallelJobs, async (object, signal) => {
      // Every name is the backup id's: the work folder holds each object under its file name.
      const meter = new Meter({ sha256: true });
      meters.push(meter);
      await pipeline(await source.read(object.key), meter, (await createFile(config.backupDir, path.join(work, path.basename(object.key)))).createWriteStream(), { signal });
      if (meter.sha256() !== object.sha256 || meter.bytes !== object.storedBytes) {
        const part = isParts(manifest) ? ` (part ${object.name})` : '';
        throw new IntegrityError(`backup ${manifest.id} at ${source.describe(object.key)} failed the checksum check${part}: SHA-256 ${meter.sha256()}, the manifest says ${object.sha256}`);
      }
    });
  } finally {
    clearInterval(ticker);
  }
  const local = { ...manifest, object: { storage: 'drill', key: path.basename(manifest.object.key) } };
  const { storage } = await workStorage(config, drillId);
  await storage.replace(siblingKey(local.object.key, MANIFEST_SUFFIX), Buffer.from(JSON.stringify(local)));
  const envelope = await readKeyEnvelope(source, manifest);
  if (envelope) await writeKeyEnvelope(storage, local, envelope);
  return { ms: Date.now() - started };
}

/**
 * Step 2: the data key from the key provider (proving it is reachable), then decrypt and decompress
 * to a plain archive. A parts backup is not decrypted here: its restore streams each part from the
 * work folder through decryption, so this step proves the key without writing plaintext: the
 * manifest authenticates under it, and every part's header carries its key's commitment.
 */
export async function decryptForDrill(config: LifelineConfig, drillId: string, signal?: AbortSignal, onBytes?: (n: number) => void): Promise<{ ms: number; rawBytes: number }> {
  const started = Date.now();
  const work = drillWorkDir(config, drillId);
  const { storage, manifest } = await localManifest(config, drillId);
  if (isParts(manifest)) {
    await checkPartKeys(storage, manifest, keyringFor(config), signal, onBytes);
    return { ms: Date.now() - started, rawBytes: manifest.sizes.rawBytes };
  }
  const chain = await openBackup(storage, manifest, keyringFor(config));
  const ticker = setInterval(() => onBytes?.(chain.stored.bytes), 1000);
  try {
    // A retried step finds the previous attempt's archive: removed, then created anew (never through a planted link).
    await remove(config.backupDir, path.join(work, 'archive.dump'));
    await pipeline(...chain.stages, (await createFile(config.backupDir, path.join(work, 'archive.dump'))).createWriteStream(), { signal });
  } finally {
    clearInterval(ticker);
  }
  checkWhole(chain, manifest, `backup ${manifest.id}`);
  return { ms: Date.now() - started, rawBytes: chain.raw.bytes };
}

/** The data key authenticates the manifest, and each part's header commits to the key derived for that part of this backup. */
async function checkPartKeys(storage: LocalStorage, manifest: Manifest, keys: Keyring, signal?: AbortSignal, onBytes?: (n: number) => void): Promise<void> {
  const dataKey = await dataKeyFor(storage, manifest, keys);
  let checked = 0;
  try {
    for (const part of manifest.parts ?? []) {
      signal?.throwIfAborted();
      const where = partWhere(storage, manifest, part);
      const key = partObjectKeyOf(manifest, part);
      if (!(await storage.stat(key))) throw new IntegrityError(`${where} is missing`, 'the download step did not finish; run the drill again');
      const chunks: Buffer[] = [];
      for await (const chunk of await storage.read(key, { start: 0, end: HEADER_BYTES })) chunks.push(chunk as Buffer);
      try {
        decodeHeader(partKey(dataKey, manifest.id, part.name), Buffer.concat(chunks));
      } catch (err) {
        throw partFailure(err, where);
      }
      onBytes?.((checked += HEADER_BYTES));
    }
  } finally {
    dataKey.fill(0);
  }
}

/** Step 3: a new scratch database on the drill server, restored from the plain archive, or from the parts in parallel as a full restore does (restoreParts). */
export async function restoreForDrill(
  config: LifelineConfig,
  db: DatabaseConfig,
  drillId: string,
  scratch: string,
  run: { signal?: AbortSignal; applicationName?: string; onProgress?: (storedBytes: number) => void } = {},
): Promise<{ ms: number }> {
  const started = Date.now();
  const server = drillServer(db);
  const { work, storage } = await workStorage(config, drillId);
  const parts = await localManifest(config, drillId).then(({ manifest }) => (isParts(manifest) ? manifest : undefined));
  // pg_restore opens the archive by name: checked first to be the regular file the last step wrote.
  if (!parts && !(await storage.stat('archive.dump'))) throw new LifelineError('DrillStateMissing', `no decrypted archive in ${work}: the decrypt step did not finish`);
  await withServer(server, async (client) => {
    await dropDatabaseIfExists(client, scratch);
    await client.query(`CREATE DATABASE ${quoteIdent(scratch)} TEMPLATE template0`);
  });
  if (parts) {
    const dataKey = await dataKeyFor(storage, parts, keyringFor(config));
    try {
      await restoreParts({
        storage,
        record: parts,
        dataKey,
        conn: onDatabase(server, scratch),
        jobs: config.parallelJobs,
        schemaOnly: false,
        pgRestoreArgs: ['--no-owner', '--no-privileges'],
        stallSeconds: config.timeouts.stallSeconds,
        signal: run.signal,
        onProgress: run.onProgress,
        applicationName: run.applicationName,
      });
    } finally {
      dataKey.fill(0);
    }
    return { ms: Date.now() - started };
  }
  // A staged file allows -j, but pg_dump wrote it to a pipe (no data offsets): one job is faster (README, Restores).
  await runPgRestore({ conn: onDatabase(server, scratch), args: ['--no-owner', '--no-privileges', '--exit-on-error'], input: path.join(work, 'archive.dump'), signal: run.signal, applicationName: run.applicationName });
  return { ms: Date.now() - started };
}

/** Step 4: exact row counts, checksums of the critical tables, SQL assertions and the critical-path command. */
export async function verifyDrill(config: LifelineConfig, db: DatabaseConfig, drillId: string, scratch: string, signal?: AbortSignal, onProgress?: (p: VerifyProgress) => void): Promise<{ ms: number; checks: DrillCheck[] }> {
  const started = Date.now();
  // The row counts and checksums below come from the manifest: authenticated again, each step trusts only what it checked.
  const { storage, manifest } = await localManifest(config, drillId);
  await authenticateManifest(storage, manifest, keyringFor(config));
  const conn = onDatabase(drillServer(db), scratch);
  const checks: DrillCheck[] = [];
  const tables = manifest.tables.filter((t) => t.kind === 'table').map((t) => `${t.schema}.${t.name}`);
  try {
    const v = await verifyRestored(conn, manifest, tables, { schemaOnly: false, checks: { sql: db.drill.sql, command: db.drill.command }, signal, onProgress });
    checks.push({ name: `row counts of ${v.tables.length} tables`, ok: true });
    checks.push(...v.checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail })));
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    const { tables: wrong = [], checks: failed = [] } = (err.details ?? {}) as { tables?: Array<{ table: string; expected: number; actual: number }>; checks?: DrillCheck[] };
    checks.push({ name: 'row counts', ok: wrong.length === 0, detail: wrong.map((t) => `${t.table}: ${t.actual} rows, backup recorded ${t.expected}`).join('; ') || undefined });
    checks.push(...failed);
  }
  await withConnection(conn, async (client) => {
    for (const table of db.drill.criticalTables) {
      const recorded = manifest.checksums?.[table];
      onProgress?.({ done: tables.length + checks.length, pid: backendPid(client) });
      const actual = await tableChecksum(client, table).catch((e: Error) => `error: ${e.message}`);
      checks.push({
        name: `checksum of ${table}`,
        ok: recorded !== undefined && recorded === actual,
        detail: recorded === undefined ? 'the backup recorded no checksum for it (taken before it was a critical table)' : recorded === actual ? undefined : `rows differ (recorded ${recorded}, restored ${actual})`,
      });
    }
  });
  return { ms: Date.now() - started, checks };
}

/** Always: the scratch database dropped and the work folder removed. Safe to repeat. */
export async function cleanupDrill(config: LifelineConfig, db: DatabaseConfig, drillId: string, scratch: string): Promise<void> {
  await withServer(drillServer(db), (client) => dropDatabaseIfExists(client, scratch));
  await remove(config.backupDir, drillWorkDir(config, drillId));
}
