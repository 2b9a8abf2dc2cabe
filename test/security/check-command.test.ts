/**
 * An operator's restore-check or drill command runs under `sh -c`: a timeout or a cancelled step
 * must end everything it started, not only the shell, and it must not see the worker's secrets.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runCheckCommand } from '../../src/restore/check-command';
import type { ResolvedConnection } from '../../src/postgres/connection';

const conn: ResolvedConnection = { safeUrl: 'postgresql://checker@127.0.0.1:5432/restored', password: 'pw-of-the-restored-db', label: '127.0.0.1:5432/restored' };
const about = { database: 'restored', backupId: 'restored_backup_20261128_010000' };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
}

/** The pid a command wrote to `file`, once it is there. */
async function pidIn(file: string): Promise<number> {
  for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
  return Number(readFileSync(file, 'utf8').trim());
}

/** A command that starts a long-lived background child, writes its pid, and waits. */
function forking(dir: string): { command: string; pid: () => Promise<number> } {
  const file = path.join(dir, 'child.pid');
  return { command: `sleep 300 & echo $! > '${file}'; wait`, pid: () => pidIn(file) };
}

describe('check commands', () => {
  it('a timeout ends the command and the programs it started', async () => {
    const f = forking(mkdtempSync(path.join(tmpdir(), 'lifeline-check-')));
    const result = await runCheckCommand(f.command, conn, about, undefined, 3000);
    assert.equal(result.ok, false);
    assert.match(result.detail, /killed by the \d+ s timeout/);
    assert.ok(await gone(await f.pid()), 'the background sleep outlived the timed-out check');
  });

  it('a cancelled step ends the command and the programs it started', async () => {
    const f = forking(mkdtempSync(path.join(tmpdir(), 'lifeline-check-')));
    const abort = new AbortController();
    const running = runCheckCommand(f.command, conn, about, abort.signal, 60_000);
    const child = await f.pid(); // the command is under way
    abort.abort();
    const result = await running;
    assert.equal(result.ok, false);
    assert.match(result.detail, /killed by cancellation/);
    assert.ok(await gone(child), 'the background sleep outlived the cancelled check');
  });

  it('returns at its own timeout even when the command started a program in a session of its own', async () => {
    // setsid (as `pg_ctl start` without -l) leaves the process group and keeps the output pipe open.
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeline-check-'));
    const file = path.join(dir, 'daemon.pid');
    const started = Date.now();
    const result = await runCheckCommand(`setsid sleep 60 & echo $! > '${file}'; sleep 30`, conn, about, undefined, 2000);
    try {
      assert.match(result.detail, /^killed by the 2 s timeout/);
      assert.ok(Date.now() - started < 8000, `returned after ${Date.now() - started} ms`);
    } finally {
      // It escaped the group kill: a session of its own is beyond reach (noted in the README).
      process.kill(await pidIn(file), 'SIGKILL');
    }
  });

  it('sees only what it needs, and its output is redacted', async () => {
    process.env.BACKUP_S3_SECRET_ACCESS_KEY = 'worker-s3-secret-not-for-checks';
    process.env.LIFELINE_CHECK_FLAVOUR = 'smoke';
    try {
      const result = await runCheckCommand('env; exit 3', conn, about);
      assert.equal(result.ok, false);
      assert.doesNotMatch(result.detail, /worker-s3-secret-not-for-checks/);
      assert.doesNotMatch(result.detail, /pw-of-the-restored-db/, 'the restored database password is printed by env (DATABASE_URL, PGPASSWORD)');
      assert.match(result.detail, /LIFELINE_CHECK_FLAVOUR=smoke/);
      assert.match(result.detail, /^exit 3:/);
    } finally {
      delete process.env.BACKUP_S3_SECRET_ACCESS_KEY;
      delete process.env.LIFELINE_CHECK_FLAVOUR;
    }
  });
});
