import { spawn, type ChildProcessWithoutNullStreams, type SpawnOptions } from 'node:child_process';
import { Duplex, type Readable } from 'node:stream';
import { LifelineError } from '../errors';

const STDERR_LIMIT = 16 * 1024;

export interface ProcessStreamOptions {
  env?: NodeJS.ProcessEnv;
  /** Turns a failed exit into a typed error (for example pg_dump's "authentication failed"). */
  classify?: (code: number | null, signal: NodeJS.Signals | null, stderr: string) => Error;
  /** Called once the child has been spawned, with its pid. */
  onSpawn?: (pid: number) => void;
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

/** A program used as a filter stage (stdin → stdout), such as `zstd`; killed if the pipeline fails. */
export function processTransform(command: string, args: string[], options: ProcessStreamOptions = {}): Duplex {
  const proc = spawnChild(command, args, options);
  const duplex = Duplex.from({ writable: proc.child.stdin, readable: processOutput(proc) });
  duplex.once('close', () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
  });
  return duplex;
}
