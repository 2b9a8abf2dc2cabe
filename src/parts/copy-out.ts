import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type pg from 'pg';
import { CopyOutStream } from './copy-data';
import { LifelineError } from '../errors';
import { classifyPgError, connect, withConnection, type ResolvedConnection } from '../postgres/connection';
import { backendPid } from '../postgres/waits';

/**
 * pg_export_snapshot()'s id: hex virtual transaction id and a counter ("00000003-0000001B-1";
 * "00000003-1" before PostgreSQL 12). It comes from the server and becomes a literal in
 * SET TRANSACTION SNAPSHOT (which takes no bind parameter): anything else is refused.
 */
const SNAPSHOT_ID = /^[0-9A-F]{8}(?:-[0-9A-F]{8})?-[1-9][0-9]{0,9}$/;

export function snapshotLiteral(id: string): string {
  if (!SNAPSHOT_ID.test(id)) {
    throw new LifelineError('IntegrityError', `the server exported a snapshot id of an unknown form (${JSON.stringify(id.slice(0, 40))})`, {
      hint: 'this PostgreSQL version names snapshots differently: set BACKUP_FORMAT=stream and report it',
    });
  }
  return `'${id}'`;
}

/**
 * What a COPY session sets, as pg_dump does for its own: output every server reads back alike
 * (ISO dates, postgres intervals, floats exact, UTF-8 text), and a table under row-level security
 * fails instead of silently giving fewer rows. No statement or idle timeouts (a part may take
 * long); lock waits as long as pg_dump's.
 */
const SESSION_SETTINGS = `SELECT set_config('DateStyle', 'ISO', false), set_config('IntervalStyle', 'postgres', false),
  set_config('extra_float_digits', '3', false), set_config('client_encoding', 'UTF8', false), set_config('row_security', 'off', false),
  set_config('statement_timeout', '0', false), set_config('idle_in_transaction_session_timeout', '0', false), set_config('lock_timeout', $1, false),
  set_config('application_name', $2, false)`;

/** One session that reads in the exported snapshot: every part it copies sees exactly what pg_dump sees. */
export interface SnapshotSession {
  client: pg.Client;
  pid?: number;
}

/** Opens a session for copying parts (each in a transaction of its own that imports the snapshot: see inSnapshot). */
export async function openSnapshotSession(conn: ResolvedConnection, lockWaitSeconds: number, applicationName: string): Promise<SnapshotSession> {
  const client = await connect(conn);
  try {
    await client.query(SESSION_SETTINGS, [`${lockWaitSeconds}s`, applicationName]);
  } catch (err) {
    closeSession({ client }, { now: true });
    throw classifyPgError(err, conn.label);
  }
  return { client, pid: backendPid(client) };
}

/**
 * Runs `fn` in a read-only transaction that imported the snapshot (the exporting transaction must
 * still be open). One transaction per part: the lock its COPY takes on the table is released when
 * the part is done, so a parts backup holds no more locks at a time than pg_dump and the snapshot
 * session do (each one per table) plus one per session.
 */
export async function inSnapshot<T>(session: SnapshotSession, snapshotId: string, fn: () => Promise<T>): Promise<T> {
  const literal = snapshotLiteral(snapshotId);
  await session.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await session.client.query(`SET TRANSACTION SNAPSHOT ${literal}`);
  const result = await fn();
  // Read only: nothing to commit but the end of the transaction (and of its lock).
  await session.client.query('COMMIT');
  return result;
}

/**
 * Ends a session: an idle one politely; one that failed or is in the middle of a COPY (`now`) by
 * closing its socket, so the server stops sending (its backend ends on the broken connection) and
 * the read-only transaction goes with it. Never waits.
 */
export function closeSession(session: Pick<SnapshotSession, 'client'>, options: { now: boolean }): void {
  const socket = (session.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  session.client.end().catch(() => undefined);
  if (options.now) socket?.destroy();
}

/**
 * The sessions of the parallel copy: at most as many as the pool runs at once, each reused for the
 * next part once its COPY is done. A session whose COPY failed is closed, not reused.
 */
export class SnapshotSessions {
  private readonly idle: SnapshotSession[] = [];
  private readonly open = new Set<SnapshotSession>();
  /** Every session opened, closed or not: a backend may outlive its closed socket while it waits on a lock. */
  readonly opened: number[] = [];

  constructor(
    private readonly conn: ResolvedConnection,
    private readonly snapshotId: string,
    private readonly lockWaitSeconds: number,
    /** application_name of the sessions: the dump's own, found (and cancelled) by it. */
    private readonly applicationName: string,
  ) {
    snapshotLiteral(snapshotId); // refused before any session opens
  }

  /** Backend pids of the open sessions: the stall watch asks the server what they wait on. */
  pids(): number[] {
    return [...this.open].flatMap((s) => (s.pid === undefined ? [] : [s.pid]));
  }

  /** Runs `fn` on an idle session, or a new one, in a transaction that imported the snapshot. */
  async use<T>(fn: (session: SnapshotSession) => Promise<T>): Promise<T> {
    const session = this.idle.pop() ?? (await this.add());
    try {
      const result = await inSnapshot(session, this.snapshotId, () => fn(session));
      this.idle.push(session);
      return result;
    } catch (err) {
      this.open.delete(session);
      closeSession(session, { now: true });
      throw err;
    }
  }

  /** Closes every session; `now` also those in the middle of a COPY (a failed or cancelled dump). */
  closeAll(options: { now: boolean }): void {
    for (const session of this.open) closeSession(session, options);
    this.open.clear();
    this.idle.length = 0;
  }

  private async add(): Promise<SnapshotSession> {
    const session = await openSnapshotSession(this.conn, this.lockWaitSeconds, this.applicationName);
    this.open.add(session);
    if (session.pid !== undefined) this.opened.push(session.pid);
    return session;
  }
}

/** The rows of a COPY text stream as they pass: each row ends in exactly one '\n' (one inside a value is written `\n`). */
export class RowCounter extends Transform {
  rows = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) this.rows++;
    done(null, chunk);
  }
}

/**
 * Cancels whatever the given backends still run, if they are this dump's (by application_name: a
 * pid reused by someone else's session is left alone). A backend blocked on a lock does not notice
 * its client is gone; cancelled, it does, and ends.
 */
export async function cancelOwnSessions(conn: ResolvedConnection, pids: number[], applicationName: string): Promise<void> {
  if (pids.length === 0) return;
  await withConnection(conn, (client) =>
    client.query('SELECT pg_catalog.pg_cancel_backend(pid) FROM pg_catalog.pg_stat_activity WHERE pid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int4[]) AND application_name OPERATOR(pg_catalog.=) $2', [pids, applicationName]),
  ).catch(() => undefined);
}

/** `COPY … TO STDOUT` on the session, as a stream of the COPY text. */
export function copyOut(session: SnapshotSession, sql: string): Readable {
  return session.client.query(new CopyOutStream(sql));
}
