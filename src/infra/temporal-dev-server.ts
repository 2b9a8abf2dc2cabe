import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { devServerSearchAttributeArgs } from '../temporal/search-attributes';
import { freePort, isListening, waitFor } from './net';

export interface DevServerOptions {
  cliPath: string;
  /** SQLite file: history survives restarts. */
  dbFile: string;
  port?: number;
  /** Web UI port; omit for a headless server. */
  uiPort?: number;
  logFile: string;
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts `temporal server start-dev` with SQLite persistence and Lifeline's search attributes, and
 * waits until it accepts connections (we do not rely on the SDK's 5-second start limit).
 */
export async function startTemporalDevServer(options: DevServerOptions): Promise<DevServer> {
  const port = options.port ?? (await freePort());
  mkdirSync(path.dirname(options.dbFile), { recursive: true });
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const args = [
    'server', 'start-dev',
    '--db-filename', options.dbFile,
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--log-level', 'warn',
    ...(options.uiPort ? ['--ui-port', String(options.uiPort)] : ['--headless']),
    ...devServerSearchAttributeArgs(),
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true',
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
  ];
  const log = openSync(options.logFile, 'a');
  const child = spawn(options.cliPath, args, { stdio: ['ignore', log, log] });
  closeSync(log);
  let exit: string | undefined;
  child.once('exit', (code, signal) => (exit = `exited (${signal ?? code}); log: ${options.logFile}\n${tail(options.logFile)}`));
  try {
    await waitFor(`Temporal dev server on 127.0.0.1:${port}`, () => isListening('127.0.0.1', port), 90_000, () => exit);
    if (options.uiPort) await waitFor('Temporal Web UI', () => isListening('127.0.0.1', options.uiPort!), 30_000, () => exit);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    address: `127.0.0.1:${port}`,
    uiUrl: options.uiPort ? `http://localhost:${options.uiPort}` : undefined,
    process: child,
    stop: () => stopProcess(child),
  };
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
