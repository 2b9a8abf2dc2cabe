import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { DumpRecord } from '../catalog/manifest';
import { IntegrityError, LifelineError } from '../errors';
import { copyFromSql } from '../parts/copy-sql';
import type { PartRecord } from '../parts/part-record';
import { runPool } from '../parts/pool';
import { checkPart, openPart, partFailure, type PartReadChain } from '../parts/read-part';
import type { Meter } from '../pipeline/meter';
import { runPipeline } from '../pipeline/run';
import { StallWatch } from '../pipeline/stall';
import { classifyPgError, connect, withConnection, type ResolvedConnection } from '../postgres/connection';
import { runPgRestore } from '../postgres/pg-restore';
import { parseTocEntries, pgRestoreListSink, type TocEntry } from '../postgres/pg-restore-list';
import { diagnoseSessions } from '../postgres/waits';
import type { BackupStorage } from '../storage/storage';
import { planPostData } from './post-data';

export interface PartsRestore {
  /** Where the parts are: the repository, a destination, or a drill's work folder. */
  storage: BackupStorage;
  /** An authenticated parts-v1 manifest (or the record of a dump being checked). */
  record: DumpRecord;
  dataKey: Buffer;
  /** The new, empty database restored into. */
  conn: ResolvedConnection;
  /** BACKUP_PARALLEL_JOBS: table parts loaded, and index batches built, this many at a time. */
  jobs: number;
  schemaOnly: boolean;
  /** Options every pg_restore run gets: `--no-owner`, and `--no-privileges` for drills. */
  pgRestoreArgs: string[];
  /** BACKUP_STALL_TIMEOUT. */
  stallSeconds: number;
  signal?: AbortSignal;
  /** Stored bytes read so far, over every part (heartbeats). */
  onProgress?: (storedBytes: number) => void;
  /** Names every session of this restore on the server (pg_restore's and the COPY ones), so that a stall can be diagnosed. */
  applicationName?: string;
  /** Each phase's duration as it ends (benchmarks print them). */
  onPhase?: (phase: RestorePhase, ms: number) => void;
}

export type RestorePhase = 'pre-data' | 'data' | 'indexes' | 'post-data';

/**
 * Settings of the sessions that load table parts. The database is a scratch copy that is swapped
 * in only after verification, so a crash just means restoring again: no need to wait for each
 * commit's WAL flush. The rest is what pg_restore sets for itself: no timeout a role or database
 * setting might impose, no row-level security silently dropping rows, and the input formats the
 * dump's COPY text was written in (UTF-8, ISO dates, postgres intervals).
 */
const LOAD_SESSION_SQL = [
  'SET synchronous_commit = off',
  'SET statement_timeout = 0',
  'SET lock_timeout = 0',
  'SET idle_in_transaction_session_timeout = 0',
  'SET row_security = off',
  "SET client_encoding = 'UTF8'",
  "SET DateStyle = 'ISO'",
  "SET IntervalStyle = 'postgres'",
].join('; ');

/**
 * Restores a parts-v1 backup into an empty database, in pgcopydb's order:
 *   (a) `pg_restore --section=pre-data` from the archive part (tables without indexes or constraints);
 *   (b) `jobs` lanes, largest first: each table part → COPY FROM STDIN on its own session, and the
 *       archive's own data section (sequences, large objects, tables not stored as parts);
 *   (c) the indexes and primary/unique keys in batches over `jobs` `pg_restore -L` runs, largest
 *       tables first, then every other post-data entry (foreign keys, triggers, …) in one run.
 * Schema-only: (a) and (c). Every part streams from storage through decryption into PostgreSQL;
 * nothing plain touches the disk (the `-L` lists hold dump ids only). pg_restore cannot seek in a
 * stream and refuses `-j` on one, so each run reads the (small) archive part again; runs that need
 * only the schema stop reading once pg_restore is done.
 */
export async function restoreParts(r: PartsRestore): Promise<void> {
  const archive = r.record.parts?.find((p) => p.kind === 'archive');
  if (!archive) throw new IntegrityError(`backup ${r.record.id} lists no archive part`);
  const applicationName = r.applicationName ?? `lifeline-restore-${randomBytes(6).toString('hex')}`;
  const meters: Meter[] = [];
  const storedBytes = () => meters.reduce((n, m) => n + m.bytes, 0);
  // Heartbeats while any part's bytes flow, or while a session of this restore works (an index
  // build reads no input); a restore that does neither for BACKUP_STALL_TIMEOUT fails, naming what it waits on.
  const watch = new StallWatch({
    what: `the restore into ${r.conn.label}`,
    stallSeconds: r.stallSeconds,
    progress: storedBytes,
    onAlive: () => r.onProgress?.(storedBytes()),
    diagnose: () => diagnoseSessions(r.conn, { pids: [], program: { name: 'pg_restore', applicationName } }),
    signal: r.signal,
  });
  const open = async (part: PartRecord): Promise<PartReadChain> => {
    const chain = await openPart(r.storage, r.record, part, r.dataKey);
    meters.push(chain.stored);
    return chain;
  };
  const steps: Steps = { open, archive, applicationName, r, conn: r.conn, sessions: new LoadSessions(r.conn, applicationName) };
  try {
    let phaseStarted = Date.now();
    const phaseDone = (phase: RestorePhase) => {
      r.onPhase?.(phase, Date.now() - phaseStarted);
      phaseStarted = Date.now();
    };
    let toc: TocEntry[] = [];
    let postData: number[] = [];
    await all(watch.signal, [
      (signal) => restoreArchive(steps, { section: 'pre-data' }, signal),
      async (signal) => void (toc = parseTocEntries(await listArchive(steps, ['--verbose'], signal))),
      async (signal) => void (postData = parseTocEntries(await listArchive(steps, ['--section=post-data'], signal)).map((e) => e.dumpId)),
    ]);
    phaseDone('pre-data');
    if (!r.schemaOnly) {
      // Largest first, so that the long loads start early; the archive's data section is one more lane.
      const loads: Array<PartRecord> = (r.record.parts ?? []).filter((p) => p.kind === 'table-data' || p.kind === 'archive');
      loads.sort((a, b) => b.rawBytes - a.rawBytes);
      await runPool(loads, r.jobs, (part, signal) => (part.kind === 'archive' ? restoreArchive(steps, { section: 'data' }, signal) : loadTablePart(steps, part, signal)), watch.signal);
      await steps.sessions.closeAll();
    }
    phaseDone('data');
    const plan = planPostData(toc, postData, r.record, r.jobs);
    steps.conn = await withBuildMemory(r.conn);
    await runPool(plan.batches, r.jobs, (ids, signal) => restoreArchive(steps, { ids }, signal), watch.signal);
    phaseDone('indexes');
    if (plan.rest.length) await restoreArchive(steps, { ids: plan.rest }, watch.signal);
    phaseDone('post-data');
  } catch (err) {
    throw watch.reason(err);
  } finally {
    watch.stop();
    await steps.sessions.closeAll();
  }
}

interface Steps {
  open: (part: PartRecord) => Promise<PartReadChain>;
  archive: PartRecord;
  applicationName: string;
  r: PartsRestore;
  /** Where pg_restore runs connect: post-data runs get more memory to sort with (withBuildMemory). */
  conn: ResolvedConnection;
  sessions: LoadSessions;
}

/**
 * The sessions that load table parts: at most one per lane, each reused for the lane's next part
 * (a database of many small tables would otherwise pay a connection and its authentication per
 * part). A session whose COPY failed is closed, not reused.
 */
class LoadSessions {
  private readonly idle: pg.Client[] = [];

  constructor(
    private readonly conn: ResolvedConnection,
    private readonly applicationName: string,
  ) {}

  async use<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = this.idle.pop() ?? (await this.open());
    let ok = false;
    try {
      const result = await work(client);
      ok = true;
      return result;
    } finally {
      if (ok) this.idle.push(client);
      else await client.end().catch(() => undefined);
    }
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.idle.splice(0).map((c) => c.end().catch(() => undefined)));
  }

  private async open(): Promise<pg.Client> {
    const client = await connect(this.conn);
    try {
      await client.query('SELECT pg_catalog.set_config($1, $2, false)', ['application_name', this.applicationName]);
      await client.query(LOAD_SESSION_SQL);
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw classifyPgError(err, this.conn.label);
    }
  }
}

/** What an index build or a foreign key check may use, at least (per pg_restore run, `jobs` at a time). */
const BUILD_MEMORY = { maintenance_work_mem: 256 * 1024, work_mem: 64 * 1024 } as const;

/**
 * The connection for post-data runs: maintenance_work_mem and work_mem raised to BUILD_MEMORY where
 * the server's own settings are lower (never lowered). Measured on a 3-million-row table: an index
 * built a third faster than with the default 64 MB (sorted in memory, and parallel workers each get
 * their 32 MB), a foreign key checked faster too. The server holds `jobs` times this while indexes
 * build. Settings of the URL's `options` come after, and win.
 */
async function withBuildMemory(conn: ResolvedConnection): Promise<ResolvedConnection> {
  const settings = await withConnection(conn, async (client) =>
    (await client.query<{ name: string; kb: string }>(`SELECT name, setting AS kb FROM pg_catalog.pg_settings WHERE name = ANY($1) AND unit = 'kB'`, [Object.keys(BUILD_MEMORY)])).rows,
  );
  const raised = Object.entries(BUILD_MEMORY)
    .filter(([name, kb]) => Number(settings.find((s) => s.name === name)?.kb ?? 0) < kb)
    .map(([name, kb]) => `-c ${name}=${kb}kB`);
  return raised.length ? { ...conn, options: [...raised, conn.options].filter(Boolean).join(' ') } : conn;
}

/** Runs the tasks together; the first failure stops the others (runPool with one lane each). */
function all(signal: AbortSignal, tasks: Array<(signal: AbortSignal) => Promise<void>>): Promise<void> {
  return runPool(tasks, tasks.length, (task, s) => task(s), signal);
}

/**
 * One pg_restore run fed the archive part: a section, or a list of dump ids. Section runs read the
 * whole part and check it against the manifest; list runs (schema entries only) stop reading once
 * pg_restore is done.
 */
async function restoreArchive(s: Steps, what: { section: 'pre-data' | 'data' } | { ids: number[] }, signal: AbortSignal): Promise<void> {
  const lists = 'ids' in what;
  const chain = await s.open(s.archive);
  try {
    // --schema-only besides a section: large objects count as data, so none is created empty (as in a single-stream restore).
    const args = [...s.r.pgRestoreArgs, ...(s.r.schemaOnly ? ['--schema-only'] : []), ...(lists ? [] : [`--section=${what.section}`])];
    await runPgRestore({ conn: s.conn, args, dumpIds: lists ? what.ids : undefined, input: chain.stages, afterExit: lists ? 'stop' : 'drain', signal, applicationName: s.applicationName });
  } catch (err) {
    throw partFailure(err, chain.where);
  }
  if (!lists) checkPart(chain, s.archive);
}

/** The archive's `pg_restore --list` output; reading stops once pg_restore has printed it (pg_dump writes the table of contents first). */
async function listArchive(s: Steps, args: string[], signal: AbortSignal): Promise<string> {
  const chain = await s.open(s.archive);
  const list = pgRestoreListSink(args);
  const stop = new AbortController();
  let listed = false;
  list.listing.then(() => {
    listed = true;
    stop.abort();
  }, () => undefined);
  try {
    await runPipeline([...chain.stages, list.sink], AbortSignal.any([signal, stop.signal])).catch((err) => {
      if (!listed) throw err;
    });
    return await list.listing;
  } catch (err) {
    throw partFailure(err, chain.where);
  }
}

/** One table part into its table: COPY FROM STDIN on one of the lanes' sessions; the part is checked whole, and its rows counted by the server. */
async function loadTablePart(s: Steps, part: PartRecord, signal: AbortSignal): Promise<void> {
  const table = s.r.record.tables.find((t) => t.kind === 'table' && t.oid === part.tableOid);
  if (!table) throw new IntegrityError(`part ${part.name} of backup ${s.r.record.id} belongs to no table of the backup`);
  const chain = await s.open(part);
  const rows = await s.sessions
    .use(async (client) => {
      const copy = client.query(copyFrom(copyFromSql(table)));
      await pipeline(...chain.stages, copy, { signal });
      return copy.rowCount;
    })
    .catch((err: unknown) => {
      throw partFailure(loadFailure(err, chain.where, s.r.conn.label), chain.where);
    });
  checkPart(chain, part);
  if (rows !== part.rows) throw new IntegrityError(`${chain.where}: ${rows} rows loaded, the backup recorded ${part.rows}`);
}

/** A server's complaint about a part's rows (or a lost session) says which part it was loading. */
function loadFailure(err: unknown, where: string, label: string): unknown {
  if (err instanceof LifelineError || !(err instanceof Error) || !('severity' in err)) return err;
  const pgError = classifyPgError(err, label);
  return new LifelineError(pgError.code, `loading ${where} into ${pgError.message}`, { retryable: pgError.retryable, hint: pgError.hint, cause: err });
}
