import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { devServerSearchAttributeArgs } from '../temporal/search-attributes';
import { freePort, isListening, waitFor } from './net';
import { startServerProcess, stopProcess } from './server-process';

export interface DevServerOptions {
  cliPath: string;
  /** SQLite file: history survives restarts. */
  dbFile: string;
  port?: number;
  /** Web UI port; omit for a headless server. */
  uiPort?: number;
  /** The codec server the Web UI decodes payloads with (`--ui-codec-endpoint`); needs `uiPort`. */
  uiCodecEndpoint?: string;
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
  const args = [
    'server', 'start-dev',
    '--db-filename', options.dbFile,
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--log-level', 'warn',
    ...(options.uiPort ? ['--ui-port', String(options.uiPort)] : ['--headless']),
    ...(options.uiPort && options.uiCodecEndpoint ? ['--ui-codec-endpoint', options.uiCodecEndpoint] : []),
    ...devServerSearchAttributeArgs(),
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true',
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
  ];
  const child = await startServerProcess({ what: 'Temporal dev server', command: options.cliPath, args, logFile: options.logFile, port, timeoutMs: 90_000 });
  if (options.uiPort) await waitFor('Temporal Web UI', () => isListening('127.0.0.1', options.uiPort!), 30_000);
  return {
    address: `127.0.0.1:${port}`,
    uiUrl: options.uiPort ? `http://localhost:${options.uiPort}` : undefined,
    process: child,
    stop: () => stopProcess(child),
  };
}

