import type pg from 'pg';
import { LifelineError } from '../errors';
import type { Diagnosis } from '../pipeline/stall';
import { formatSeconds } from '../pipeline/stall';
import { withConnection, type ResolvedConnection } from './connection';

/** The backend pid of a connected node-postgres client (not in its typings). */
export function backendPid(client: pg.Client): number | undefined {
  return (client as unknown as { processID?: number | null }).processID ?? undefined;
}

/** Interrupts a session's running query (the step that owned it gave up): its role may cancel its own sessions. */
export async function cancelQuery(conn: ResolvedConnection, pid: number): Promise<void> {
  await withConnection(conn, (client) => client.query('SELECT pg_cancel_backend($1)', [pid])).catch(() => undefined);
}

/** The sessions of one step: ours by backend pid, a program's (pg_dump's) by its application_name. */
export interface StepSessions {
  pids: number[];
  program?: { name: string; applicationName: string };
}

interface SessionRow {
  pid: number;
  application_name: string | null;
  state: string | null;
  wait_event_type: string | null;
  wait_event: string | null;
  waiting_for: string | null;
  blockers: string | null;
}

/** Who holds a lock: "pid 812 (user app, application psql, idle in transaction since 02:10:04 UTC)". */
const HOLDER = `format('pid %s (user %s, application %s, %s%s)', b.pid, coalesce(b.usename, '?'),
  coalesce(nullif(b.application_name, ''), 'unnamed'), coalesce(b.state, 'state hidden'),
  coalesce(' since ' || to_char(b.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', ''))`;

/** A locked relation as schema.name, quoted where needed (regclass text omits a schema on the search path). */
const RELATION = `coalesce((SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = l.relation), 'relation ' || l.relation)`;

const SESSIONS_SQL = `
  SELECT a.pid, a.application_name, a.state, a.wait_event_type, a.wait_event,
    (SELECT string_agg(DISTINCT ${RELATION}, ', ') FROM pg_locks l
      WHERE l.pid = a.pid AND NOT l.granted AND l.relation IS NOT NULL) AS waiting_for,
    (SELECT string_agg(${HOLDER}, '; ') FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(a.pid))) AS blockers
  FROM pg_stat_activity a
  WHERE a.pid = ANY($1::int[]) OR ($2::text IS NOT NULL AND a.application_name = $2::text)`;

/**
 * What a step's sessions on the server are doing, once the step made no progress for a while:
 * waiting for a lock (which relation, held by whom), busy on a query (progress), or waiting for
 * the client to read (the pipeline downstream is stuck). A server that does not answer is what it
 * waits on too. Names come back from the server as data (regclass text) and only go into a message.
 */
export async function diagnoseSessions(conn: ResolvedConnection, sessions: StepSessions): Promise<Diagnosis> {
  let rows: SessionRow[];
  try {
    rows = await withConnection(conn, async (client) => (await client.query<SessionRow>(SESSIONS_SQL, [sessions.pids, sessions.program?.applicationName ?? null])).rows);
  } catch (err) {
    return { waitsOn: `the database server ${conn.label}, which does not answer (${(err as Error).message})` };
  }
  const locked = rows.find((r) => r.wait_event_type === 'Lock');
  if (locked) {
    return { waitsOn: `a lock${locked.waiting_for ? ` on ${locked.waiting_for}` : ''} in ${conn.label}${locked.blockers ? `, held by ${locked.blockers}` : ''}` };
  }
  const busy = rows.find((r) => r.state === 'active' && r.wait_event_type !== 'Client');
  if (busy) return { busy: `pid ${busy.pid} is running a query${busy.wait_event ? ` (${busy.wait_event_type}: ${busy.wait_event})` : ''}` };
  if (rows.some((r) => r.wait_event === 'ClientWrite')) {
    return { waitsOn: 'the pipeline after the database: the server waits for its output to be read (compression, encryption or the repository does not move)' };
  }
  if (rows.length === 0 && !sessions.program) return { waitsOn: `a session on ${conn.label} that has ended` };
  const program = sessions.program;
  if (program && !rows.some((r) => r.application_name === program.applicationName)) {
    return { waitsOn: `${program.name}, which has no session on ${conn.label} and sends nothing` };
  }
  return { waitsOn: `the client: its session on ${conn.label} is ${rows.map((r) => r.state ?? 'unknown').join(', ')} and nothing arrives` };
}

const BLOCKING_LOCKS_SQL = `
  SELECT DISTINCT ${RELATION} AS relation, l.mode, ${HOLDER} AS holder
  FROM pg_locks l JOIN pg_stat_activity b ON b.pid = l.pid
  WHERE l.granted AND l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND l.pid <> pg_backend_pid() AND NOT (l.pid = ANY($1::int[]))
  ORDER BY 1`;

/** PostgreSQL's lock_not_available, or pg_dump's --lock-wait-timeout (a statement timeout on LOCK TABLE). */
export function isLockTimeout(err: unknown): boolean {
  for (let e = err as { code?: string; message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === '55P03' || e.code === 'LockTimeout') return true;
    if (/lock timeout|could not obtain lock|Query was: LOCK TABLE/i.test(e.message ?? '')) return true;
  }
  return false;
}

/**
 * A read that gave up waiting for a lock, as a retryable error naming what holds the locks that
 * block reading (an ACCESS EXCLUSIVE lock: LOCK TABLE, ALTER TABLE, VACUUM FULL, a migration).
 */
export async function lockTimeoutError(conn: ResolvedConnection, what: string, lockWaitSeconds: number, ownPids: number[], cause: unknown): Promise<LifelineError> {
  const holders = await withConnection(conn, async (client: pg.Client) =>
    (await client.query<{ relation: string; mode: string; holder: string }>(BLOCKING_LOCKS_SQL, [ownPids])).rows,
  ).catch(() => []);
  const held = holders.length
    ? holders.map((h) => `${h.relation} is locked (${h.mode}) by ${h.holder}`).join('; ')
    : 'the lock was released before it could be named';
  return new LifelineError('LockTimeout', `${what} waited ${formatSeconds(lockWaitSeconds)} (BACKUP_LOCK_WAIT_TIMEOUT) for a lock and gave up: ${held}`, {
    retryable: true,
    cause,
    hint: 'another session holds a lock that blocks reading (LOCK TABLE, ALTER TABLE, VACUUM FULL, a migration, or a transaction left open); Lifeline retries: end that session or let it finish, or raise BACKUP_LOCK_WAIT_TIMEOUT',
  });
}
