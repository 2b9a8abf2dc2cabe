import type { Readable } from 'node:stream';
import type { BackupType } from '../catalog/naming';
import { LifelineError } from '../errors';
import { processOutput, spawnChild, type ChildStream } from '../pipeline/child-process';
import { pgTool } from './binaries';
import { classifyPgError, sessionEnv, type ResolvedConnection } from './connection';
import { isLockTimeout } from './waits';

export interface PgDumpOptions {
  conn: ResolvedConnection;
  snapshotId: string;
  type: BackupType;
  /** --lock-wait-timeout: a table locked by another session fails the dump instead of blocking it. */
  lockWaitSeconds: number;
  /** Names pg_dump's session on the server, so that a stalled dump can be diagnosed. */
  applicationName: string;
  /** Tables whose rows are stored elsewhere (as parts): their definitions stay in the archive, their data does not. */
  excludeTableData?: Array<{ schema: string; name: string }>;
  /**
   * --encoding: the archive's client encoding. pg_dump reads its patterns in it, and Node passes
   * them in UTF-8: in the database's own encoding (LATIN1, …) a non-ASCII name would match nothing,
   * and that table's rows would be in the archive as well as in its parts.
   */
  encoding?: 'UTF8';
  signal?: AbortSignal;
}

/**
 * pg_dump's pattern naming exactly one table: inside double quotes every character is literal
 * (`*`, `?`, `.`, `$` too) and `""` is one `"`. It travels as one argv element, never through a shell.
 */
export function exactTablePattern(table: { schema: string; name: string }): string {
  const quoted = (s: string) => `"${s.replace(/"/g, '""')}"`;
  return `${quoted(table.schema)}.${quoted(table.name)}`;
}

/** Linux limits the whole command line to about 2 MB (a quarter of the stack limit): stay well below. */
const ARGV_LIMIT_BYTES = 1024 * 1024;

function excludeArgs(tables: Array<{ schema: string; name: string }>): string[] {
  const args = tables.map((t) => `--exclude-table-data=${exactTablePattern(t)}`);
  const bytes = args.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
  if (bytes > ARGV_LIMIT_BYTES) {
    throw new LifelineError('TooManyTables', `the database has ${tables.length} tables: pg_dump's command line naming them (${bytes} bytes) would exceed the system's limit`, {
      hint: 'set BACKUP_FORMAT=stream (one pg_dump archive, no table list on its command line)',
    });
  }
  return args;
}

function typeArgs(type: BackupType): string[] {
  if (type === 'schema-only') return ['--schema-only'];
  if (type === 'data-only') return ['--data-only'];
  return [];
}

function classifyDumpFailure(label: string) {
  return (code: number | null, signal: NodeJS.Signals | null, stderr: string): Error => {
    if (/server version mismatch/.test(stderr)) {
      return new LifelineError('PgDumpVersionMismatch', `pg_dump is older than the server of ${label}: ${stderr}`, {
        hint: 'install the PostgreSQL client of the server\'s major version or newer, or set LIFELINE_PG_BIN',
      });
    }
    if (signal) return new LifelineError('PgDumpFailed', `pg_dump was killed by ${signal}`, { retryable: true });
    // Named in full (which relation, held by whom) by the caller, which can still ask the server.
    if (isLockTimeout({ message: stderr })) return new LifelineError('LockTimeout', `pg_dump of ${label} gave up waiting for a lock: ${stderr}`, { retryable: true });
    const classified = classifyPgError(new Error(stderr || `pg_dump exited with status ${code}`), label);
    return classified.code === 'PgError'
      ? new LifelineError('PgDumpFailed', `pg_dump of ${label} exited with status ${code}: ${stderr}`, { retryable: true })
      : classified;
  };
}

/**
 * Starts pg_dump in custom format without its own compression (the pipeline compresses), reading the
 * exported snapshot. No shell: the URL on argv carries no password (it travels in PGPASSWORD).
 */
export function startPgDump(options: PgDumpOptions): { proc: ChildStream; output: Readable } {
  const args = [
    '--format=custom',
    '-Z0',
    '--no-password',
    `--lock-wait-timeout=${options.lockWaitSeconds * 1000}`,
    `--snapshot=${options.snapshotId}`,
    ...typeArgs(options.type),
    ...(options.encoding ? [`--encoding=${options.encoding}`] : []),
    ...excludeArgs(options.excludeTableData ?? []),
    `--dbname=${options.conn.safeUrl}`,
  ];
  const proc = spawnChild(pgTool('pg_dump'), args, {
    env: { ...sessionEnv(options.conn), PGAPPNAME: options.applicationName },
    classify: classifyDumpFailure(options.conn.label),
    signal: options.signal,
  });
  return { proc, output: processOutput(proc) };
}
