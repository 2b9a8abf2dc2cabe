import { pipeline } from 'node:stream/promises';
import type { DumpRecord } from '../catalog/manifest';
import { dataKey, type BackupType } from '../catalog/naming';
import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { Encryptor } from '../crypto/encryptor';
import { DEFAULT_CHUNK_BYTES } from '../crypto/format';
import { keyProviderFor, type DataKey } from '../crypto/keys';
import { LifelineError } from '../errors';
import { chooseLevel, createCompressor, FILE_EXTENSION } from '../pipeline/compression';
import { Meter } from '../pipeline/meter';
import { pgTool, toolVersion } from '../postgres/binaries';
import { classifyPgError, connect, resolveConnection, type ResolvedConnection } from '../postgres/connection';
import { startPgDump } from '../postgres/pg-dump';
import { exportSnapshot, takeInventory, type DatabaseInventory } from '../postgres/snapshot';
import type { BackupStorage } from '../storage/storage';
import { claimBackupId, recordDump } from './claim';
import { dumpParts } from './dump-parts';
import { DumpWatch } from './dump-watch';
import { localStorageFor } from './repository';

export interface DumpRequest {
  backupId: string;
  type: BackupType;
  /** The workflow that owns this backup id: a retry of the same workflow resumes, another one conflicts. */
  workflow?: { workflowId: string; runId: string };
}

export interface DumpProgress {
  phase: 'connecting' | 'dumping' | 'storing';
  rawBytes: number;
  storedBytes: number;
  /** A parts backup: parts stored so far, of how many. */
  parts?: { done: number; total: number };
}

export interface DumpHooks {
  onProgress?: (progress: DumpProgress) => void;
  /** Aborts the dump: pg_dump is killed and the temporary object removed. */
  signal?: AbortSignal;
  progressIntervalMs?: number;
  /** A parts backup: a table part's COPY started on a session (its backend pid) or its part was stored. */
  onPart?: (event: PartEvent) => void;
}

export interface PartEvent {
  part: string;
  table: string;
  phase: 'started' | 'stored';
  pid?: number;
  at: number;
}

/** What both formats' dumps are given: the claimed id, its data key, where to write. */
export interface DumpContext {
  config: LifelineConfig;
  db: DatabaseConfig;
  request: DumpRequest;
  hooks: DumpHooks;
  storage: BackupStorage;
  conn: ResolvedConnection;
  key: DataKey;
  keyProvider: DumpRecord['encryption']['keyProvider'];
  pgDumpVersion: string;
}

/**
 * Dumps one database into the local repository, in the configured format (BACKUP_FORMAT): `parts`
 * (src/backup/dump-parts.ts) or one `stream`. Memory stays bounded whatever the database size;
 * nothing becomes visible until complete. Returns the record the verification and catalog steps
 * build on; it is also kept beside the objects (`.pending.json`) so that a retry after a crash
 * returns it instead of dumping again.
 */
export async function dumpToRepository(config: LifelineConfig, db: DatabaseConfig, request: DumpRequest, hooks: DumpHooks = {}): Promise<DumpRecord> {
  const storage = localStorageFor(db);
  const { backupId: id } = request;

  // A finished attempt's record, or the id claimed for this run (leftovers of its attempts removed).
  const done = await claimBackupId(storage, db.name, id, request.workflow);
  if (done) return done;

  const conn = resolveConnection(db);
  const keys = keyProviderFor(config);
  const key = await keys.generateDataKey({ database: db.name, backupId: id });
  try {
    const pgDumpVersion = await toolVersion(pgTool('pg_dump')).catch((err) => {
      throw new LifelineError('ToolMissing', `cannot run pg_dump (${pgTool('pg_dump')}): ${(err as Error).message}`, {
        hint: 'install the PostgreSQL client (postgresql-15 or newer), or set LIFELINE_PG_BIN',
      });
    });
    const context: DumpContext = { config, db, request, hooks, storage, conn, key, keyProvider: keys.kind, pgDumpVersion };
    const record = config.backup.format === 'parts' ? await dumpParts(context) : await dumpStream(context);
    await recordDump(storage, record);
    return record;
  } finally {
    key.plaintext.fill(0);
  }
}

/**
 * The single-stream format:
 *   pg_dump -Fc -Z0 → meter → compress → meter → encrypt → meter+SHA-256 → temporary object → publish.
 */
async function dumpStream(context: DumpContext): Promise<DumpRecord> {
  const { config, db, request, hooks, storage, conn, key } = context;
  const id = request.backupId;
  const startedAt = new Date();
  const raw = new Meter({ sha256: true });
  const compressed = new Meter();
  const stored = new Meter({ sha256: true });
  hooks.onProgress?.({ phase: 'connecting', rawBytes: 0, storedBytes: 0 });
  const client = await connect(conn);
  let dump: ReturnType<typeof startPgDump> | undefined;
  const writer = await storage.createWriter(dataKey(db.name, id, FILE_EXTENSION[config.compression.algorithm]));
  const watch = new DumpWatch(config, conn, client, hooks, () => ({ rawBytes: raw.bytes, storedBytes: stored.bytes }));
  try {
    const snapshotId = await exportSnapshot(client).catch((err) => {
      throw classifyPgError(err, conn.label);
    });
    await watch.limitLockWaits();
    const size = await client.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n');
    const level = chooseLevel(config.compression.algorithm, Number(size.rows[0]!.n), config.compression.level);
    dump = startPgDump({ conn, snapshotId, type: request.type, lockWaitSeconds: watch.lockWaitSeconds, applicationName: watch.applicationName, signal: watch.signal });
    const [, inventory] = await Promise.all([
      pipeline(
        dump.output,
        raw,
        createCompressor(config.compression.algorithm, level, config.parallelJobs),
        compressed,
        new Encryptor(key.plaintext, DEFAULT_CHUNK_BYTES),
        stored,
        writer.stream,
        { signal: watch.signal },
      ),
      takeInventory(client, { withData: request.type !== 'schema-only', countRows: true, criticalTables: db.drill.criticalTables }).catch((err) => {
        throw classifyPgError(err, conn.label);
      }),
    ]);
    hooks.onProgress?.({ phase: 'storing', rawBytes: raw.bytes, storedBytes: stored.bytes });
    await writer.publish();

    return {
      ...recordBase(context, startedAt, inventory),
      sizes: {
        databaseBytes: inventory.databaseBytes,
        rawBytes: raw.bytes,
        compressedBytes: compressed.bytes,
        storedBytes: stored.bytes,
      },
      sha256: stored.sha256(),
      rawSha256: raw.sha256(),
      compression: { algorithm: config.compression.algorithm, level },
      tables: inventory.tables,
    };
  } catch (err) {
    await writer.abort();
    if (hooks.signal?.aborted) throw hooks.signal.reason ?? err;
    throw await watch.failure(err);
  } finally {
    watch.stop();
    if (dump && dump.proc.child.exitCode === null && dump.proc.child.signalCode === null) dump.proc.child.kill('SIGTERM');
    // Ending the session ends its read-only snapshot transaction; no COMMIT, which would queue
    // behind a row count still running when the dump failed.
    await client.end().catch(() => undefined);
  }
}

/** The fields of a dump's record that do not depend on its format. */
export function recordBase(context: DumpContext, startedAt: Date, inventory: DatabaseInventory) {
  const { config, db, request, storage, key } = context;
  return {
    id: request.backupId,
    database: db.name,
    type: request.type,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    postgres: { serverVersion: inventory.serverVersion, pgDumpVersion: context.pgDumpVersion },
    encryption: {
      format: 'lifeline-aes-256-gcm-stream-v1' as const,
      chunkBytes: DEFAULT_CHUNK_BYTES,
      keyProvider: context.keyProvider,
      keyId: key.keyId,
      wrappedKey: key.wrappedKey,
    },
    object: { storage: storage.name, key: dataKey(db.name, request.backupId, FILE_EXTENSION[config.compression.algorithm]) },
    largeObjects: inventory.largeObjects,
    ...(Object.keys(inventory.checksums).length && { checksums: inventory.checksums }),
    workflow: request.workflow,
  } satisfies Partial<DumpRecord>;
}
