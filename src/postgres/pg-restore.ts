import { LifelineError } from '../errors';
import { feedAndWait, spawnChild } from '../pipeline/child-process';
import { runPipeline, type Stage } from '../pipeline/run';
import { pgTool } from './binaries';
import { sessionEnv, type ResolvedConnection } from './connection';

export interface PgRestoreRun {
  conn: ResolvedConnection;
  args: string[];
  /** Stages producing the plain archive (streamed, single job), or a staged archive file (allows -j). */
  input: Stage[] | string;
  signal?: AbortSignal;
  /** Names pg_restore's session on the server (PGAPPNAME), so that a stalled restore can be diagnosed. */
  applicationName?: string;
}

/** Runs pg_restore into `conn`'s database; fails with its stderr. */
export async function runPgRestore(run: PgRestoreRun): Promise<void> {
  const args = [...run.args, '--exit-on-error', '--no-password', `--dbname=${run.conn.safeUrl}`];
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
    await feedAndWait(
      typeof run.input === 'string' ? Promise.resolve(void proc.child.stdin.end()) : runPipeline([...run.input, proc.child.stdin], run.signal),
      proc,
    );
  } finally {
    run.signal?.removeEventListener('abort', abort);
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
  }
}
