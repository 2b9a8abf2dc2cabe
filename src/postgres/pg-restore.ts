import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LifelineError } from '../errors';
import { feedAndWait, processInput, spawnChild } from '../pipeline/child-process';
import { runPipeline, type Stage } from '../pipeline/run';
import { pgTool } from './binaries';
import { sessionEnv, type ResolvedConnection } from './connection';

export interface PgRestoreRun {
  conn: ResolvedConnection;
  args: string[];
  /** Stages producing the plain archive (streamed, single job), or a staged archive file (allows -j). */
  input: Stage[] | string;
  /**
   * Streamed input that pg_restore leaves unread when it has what it needs (`--section=pre-data`,
   * `-L` of schema entries): 'drain' reads it to its end anyway (and drops it), so that the whole
   * stream can be checked afterwards; 'stop' stops reading once pg_restore has succeeded (what it
   * read was authenticated chunk by chunk, and a prefix of an authentic stream is authentic).
   * Default: piped straight into pg_restore, which must read it all.
   */
  afterExit?: 'drain' | 'stop';
  signal?: AbortSignal;
  /** Names pg_restore's session on the server (PGAPPNAME), so that a stalled restore can be diagnosed. */
  applicationName?: string;
  /** Restores only these entries, in this order (`--use-list`, a private temporary file of these numbers only). */
  dumpIds?: number[];
}

/** Runs pg_restore into `conn`'s database; fails with its stderr. */
export async function runPgRestore(run: PgRestoreRun): Promise<void> {
  if (!run.dumpIds) return restore(run, []);
  // pg_restore reads the number at the start of each line of a list, and restores in the list's order.
  // A file, not a pipe: Node's child pipes are sockets, which /dev/fd cannot open.
  const folder = await fs.mkdtemp(path.join(tmpdir(), 'lifeline-pg_restore-'));
  try {
    const list = path.join(folder, 'list');
    await fs.writeFile(list, run.dumpIds.map((id) => `${id}\n`).join(''), { mode: 0o600, flag: 'wx' });
    return await restore(run, [`--use-list=${list}`]);
  } finally {
    await fs.rm(folder, { recursive: true, force: true });
  }
}

async function restore(run: PgRestoreRun, extra: string[]): Promise<void> {
  const args = [...run.args, ...extra, '--exit-on-error', '--no-password', `--dbname=${run.conn.safeUrl}`];
  if (typeof run.input === 'string') args.push(run.input);
  const proc = spawnChild(pgTool('pg_restore'), args, {
    env: { ...sessionEnv(run.conn), ...(run.applicationName && { PGAPPNAME: run.applicationName }) },
    classify: (code, signal, stderr) =>
      new LifelineError('PgRestoreFailed', `pg_restore into ${run.conn.label} ${signal ? `was killed by ${signal}` : `failed (status ${code})`}: ${stderr}`, {
        retryable: !!signal,
      }),
  });
  const abort = () => proc.child.kill('SIGTERM');
  run.signal?.addEventListener('abort', abort, { once: true });
  try {
    await feedAndWait(feed(run, proc), proc);
  } finally {
    run.signal?.removeEventListener('abort', abort);
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
  }
}

function feed(run: PgRestoreRun, proc: ReturnType<typeof spawnChild>): Promise<void> {
  if (typeof run.input === 'string') return Promise.resolve(void proc.child.stdin.end());
  if (!run.afterExit) return runPipeline([...run.input, proc.child.stdin], run.signal);
  if (run.afterExit === 'drain') return runPipeline([...run.input, processInput(proc)], run.signal);
  const stop = new AbortController();
  let done = false;
  proc.exited.then(() => {
    done = true;
    stop.abort();
  }, () => undefined);
  const signal = run.signal ? AbortSignal.any([run.signal, stop.signal]) : stop.signal;
  return runPipeline([...run.input, processInput(proc)], signal).catch((err) => {
    if (!done) throw err;
  });
}
