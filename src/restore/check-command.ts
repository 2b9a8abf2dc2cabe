import { spawn } from 'node:child_process';
import { libpqEnv, type ResolvedConnection } from '../postgres/connection';
import { redact, registerSecret } from '../security/redact';

/** What a check command inherits from the worker: enough to run, none of its secrets (S3, SMTP, keys). */
const INHERITED = /^(PATH|HOME|LANG|LC_[A-Z]+|TZ|TMPDIR|LIFELINE_CHECK_[A-Z0-9_]+)$/;
const OUTPUT_KEPT = 8000;

/** The URL with its password, for the operator's command only (its environment, never Temporal). */
function urlWithPassword(conn: ResolvedConnection): string {
  const url = new URL(conn.safeUrl);
  if (conn.password !== undefined) url.password = encodeURIComponent(conn.password);
  return url.toString();
}

/**
 * The environment of a restore-check or drill command: PATH, HOME, LANG, LC_*, TZ, TMPDIR and the
 * operator's LIFELINE_CHECK_* variables from the worker; DATABASE_URL and the PG* variables of the
 * database it checks; LIFELINE_DATABASE and LIFELINE_BACKUP_ID.
 */
export function checkCommandEnv(conn: ResolvedConnection, about: { database: string; backupId: string }, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const url = new URL(conn.safeUrl);
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(base).filter(([k]) => INHERITED.test(k)));
  const pg: Record<string, string> = {
    PGHOST: decodeURIComponent(url.hostname.replace(/^\[(.*)\]$/, '$1')),
    PGPORT: url.port || '5432',
    PGDATABASE: decodeURIComponent(url.pathname.slice(1)),
    PGUSER: decodeURIComponent(url.username),
  };
  for (const [k, v] of Object.entries(pg)) if (v) env[k] = v;
  return libpqEnv(conn, { ...env, DATABASE_URL: urlWithPassword(conn), LIFELINE_DATABASE: about.database, LIFELINE_BACKUP_ID: about.backupId });
}

/**
 * Runs an operator's check command under `sh -c` with checkCommandEnv; the result's detail is the
 * exit and the last lines of output, redacted (the command may print its DATABASE_URL).
 */
export function runCheckCommand(
  command: string,
  conn: ResolvedConnection,
  about: { database: string; backupId: string },
  signal?: AbortSignal,
  timeoutMs = 10 * 60_000,
): Promise<{ ok: boolean; detail: string }> {
  registerSecret(conn.password);
  return new Promise((resolve) => {
    // A cancelled step ends its command too (the operator's tests may run long).
    const child = spawn('sh', ['-c', command], { env: checkCommandEnv(conn, about), stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, signal });
    let output = '';
    let cut = false;
    const keep = (d: Buffer) => {
      output += d.toString();
      if (output.length > OUTPUT_KEPT) {
        output = output.slice(-OUTPUT_KEPT);
        cut = true;
      }
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const tail = () => {
      // A line cut in two could hold half a secret that no pattern recognises: drop it.
      const lines = output.trim().split('\n');
      if (cut) lines.shift();
      return redact(lines.slice(-15).join('\n'));
    };
    child.once('error', (err) => resolve({ ok: false, detail: redact(err.message) }));
    child.once('close', (code, killed) => resolve({ ok: code === 0, detail: `${killed ? `killed by ${killed}` : `exit ${code}`}: ${tail()}` }));
  });
}
