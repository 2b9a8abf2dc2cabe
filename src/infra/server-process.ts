import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isListening, waitFor } from './net';

export interface ServerProcessOptions {
  /** What it is, for messages. */
  what: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logFile: string;
  port: number;
  timeoutMs?: number;
}

/** Starts a server whose output goes to a log file and waits until it accepts connections on 127.0.0.1:port. */
export async function startServerProcess(options: ServerProcessOptions): Promise<ChildProcess> {
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const log = openSync(options.logFile, 'a');
  const child = spawn(options.command, options.args, { stdio: ['ignore', log, log], env: options.env ?? process.env, cwd: options.cwd });
  closeSync(log);
  let exit: string | undefined;
  child.once('exit', (code, signal) => (exit = `exited (${signal ?? code}); log: ${options.logFile}\n${tail(options.logFile)}`));
  try {
    await waitFor(`${options.what} on 127.0.0.1:${options.port}`, () => isListening('127.0.0.1', options.port), options.timeoutMs ?? 30_000, () => exit);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return child;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

export function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
