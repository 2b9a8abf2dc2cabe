import { spawn, type ChildProcessWithoutNullStreams, type SpawnOptions } from 'node:child_process';
import { Duplex, Writable, type Readable } from 'node:stream';
import { LifelineError } from '../errors';

const STDERR_LIMIT = 16 * 1024;

export interface ProcessStreamOptions {
  env?: NodeJS.ProcessEnv;
  /** Turns a failed exit into a typed error (for example pg_dump's "authentication failed"). */
  classify?: (code: number | null, signal: NodeJS.Signals | null, stderr: string) => Error;
  /** Called once the child has been spawned, with its pid. */
  onSpawn?: (pid: number) => void;
  /** The step's cancellation: the child is killed when it aborts, so a cancelled step leaves no process behind. */
  signal?: AbortSignal;
}

export interface ChildStream {
  child: ChildProcessWithoutNullStreams;
  /** Resolves when the child exits with status 0, rejects with a typed error otherwise. */
  exited: Promise<void>;
  stderr(): string;
}

/** Spawns a program without a shell and watches its exit; the caller wires stdin/stdout. */
export function spawnChild(command: string, args: string[], options: ProcessStreamOptions = {}): ChildStream {
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  } satisfies SpawnOptions) as ChildProcessWithoutNullStreams;
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < STDERR_LIMIT) stderr += d;
  });
  // A reader that stops early (pg_restore --list) must not crash us with EPIPE.
  child.stdin.on('error', () => undefined);
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new LifelineError('ToolMissing', `cannot run ${command}: not found`, {
              hint: 'run `lifeline up` (or npm start) once to install the tools, or put the program on PATH',
            })
          : err,
      );
    });
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      const text = stderr.trim();
      reject(
        options.classify?.(code, signal, text) ??
          new LifelineError('ProcessFailed', `${command} ${signal ? `was killed by ${signal}` : `exited with status ${code}`}${text ? `: ${text}` : ''}`, {
            retryable: true,
          }),
      );
    });
  });
  // Callers that stop early (a failed pipeline) never await it; that must not crash the process.
  exited.catch(() => undefined);
  const signal = options.signal;
  if (signal) {
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    };
    if (signal.aborted) kill();
    else {
      signal.addEventListener('abort', kill, { once: true });
      child.once('close', () => signal.removeEventListener('abort', kill));
    }
  }
  if (child.pid !== undefined) options.onSpawn?.(child.pid);
  return { child, exited, stderr: () => stderr };
}

/** The child's stdout as a stream that errors if the program fails, even after printing everything. */
export function processOutput(proc: ChildStream): Readable {
  return Duplex.from(
    (async function* () {
      for await (const chunk of proc.child.stdout) yield chunk as Buffer;
      await proc.exited;
    })(),
  ) as unknown as Readable;
}

/**
 * The child's stdin as a sink that keeps accepting (and dropping) bytes once the child has closed
 * it: programs such as `pg_restore --list` or `pg_restore -L` stop reading when they have what they
 * need. Whether that was a success is for the child's exit status to say, not for a broken pipe.
 */
export function processInput(proc: ChildStream): Writable {
  const stdin = proc.child.stdin;
  const open = () => !stdin.destroyed && !stdin.writableEnded;
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      if (!open() || stdin.write(chunk)) return done();
      const resume = () => {
        stdin.off('drain', resume);
        stdin.off('close', resume);
        done();
      };
      stdin.on('drain', resume);
      stdin.on('close', resume);
    },
    final(done) {
      if (open()) stdin.end();
      done();
    },
    destroy(err, done) {
      // Also called after a normal finish (autoDestroy): only a failed pipeline stops the child.
      if (err && proc.child.exitCode === null) proc.child.kill('SIGTERM');
      done(err);
    },
  });
}

/** A program used as a filter stage (stdin → stdout), such as `zstd`; killed if the pipeline fails. */
export function processTransform(command: string, args: string[], options: ProcessStreamOptions = {}): Duplex {
  const proc = spawnChild(command, args, options);
  const duplex = Duplex.from({ writable: processInput(proc), readable: processOutput(proc) });
  duplex.once('close', () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
  });
  return duplex;
}

/**
 * Waits for a program and for the stream feeding it. When both fail, reports the cause: a damaged
 * input rather than the program's complaint about it, and the program's own error rather than the
 * broken pipe its exit left behind.
 */
export async function feedAndWait(feeding: Promise<void>, proc: ChildStream): Promise<void> {
  const [fed, ran] = await Promise.allSettled([feeding, proc.exited]);
  const brokenPipe = fed.status === 'rejected' && ['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE'].includes((fed.reason as NodeJS.ErrnoException).code ?? '');
  if (fed.status === 'rejected' && !brokenPipe) throw fed.reason;
  if (ran.status === 'rejected') throw ran.reason;
  if (fed.status === 'rejected') throw fed.reason;
}
