import { spawn } from 'node:child_process';
import { libpqEnv, urlWithPassword, type ResolvedConnection } from '../postgres/connection';
import { redact, registerSecret } from '../security/redact';

/** What a check command inherits from the worker: enough to run, none of its secrets (S3, SMTP, keys). */
const INHERITED = /^(PATH|HOME|LANG|LC_[A-Z]+|TZ|TMPDIR|LIFELINE_CHECK_[A-Z0-9_]+)$/;
const OUTPUT_KEPT = 8000;
/** How long output may still arrive after the command's shell exited. */
const OUTPUT_GRACE_MS = 500;

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
    // Its own process group, so that a timeout or a cancelled step ends everything the command
    // started (`sh -c "npm test"` forks), not just the shell.
    const child = spawn('sh', ['-c', command], { env: checkCommandEnv(conn, about), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let killedBy: string | undefined;
    const killGroup = (why: string) => {
      killedBy ??= why;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => killGroup(`the ${Math.round(timeoutMs / 1000)} s timeout`), timeoutMs);
    const onAbort = () => killGroup('cancellation');
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    const settle = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
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
    child.once('error', (err) => {
      settle();
      resolve({ ok: false, detail: redact(err.message) });
    });
    // The result is the shell's exit. A program the command put in a session of its own (setsid,
    // `pg_ctl start`) escapes the group kill and may hold the output pipes open for ever: output
    // still in flight gets a moment, then the pipes are let go.
    child.once('exit', (code, killed) => {
      settle();
      // What the command left running in its group ends with it.
      killGroup(killedBy ?? 'the end of the command');
      const finish = () => {
        child.stdout.destroy();
        child.stderr.destroy();
        const how = killed ? `killed by ${killedBy ?? killed}` : `exit ${code}`;
        resolve({ ok: code === 0 && !killed, detail: `${how}: ${tail()}` });
      };
      const drained = setTimeout(finish, OUTPUT_GRACE_MS);
      child.once('close', () => {
        clearTimeout(drained);
        finish();
      });
    });
  });
}
