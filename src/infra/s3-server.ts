import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { freePort } from './net';
import { startServerProcess, stopProcess } from './server-process';

export interface LocalS3Server {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Where the objects are on disk: `<dataDir>/<bucket>/<key>`. */
  dataDir: string;
  process: ChildProcess;
  stop(): Promise<void>;
  /** Starts it again on the same port and folders (after stop()). */
  restart(): Promise<void>;
}

/**
 * versitygw serving a folder over the S3 API on loopback, with versioning and object lock
 * available. Credentials are fixed per server; objects and metadata survive a restart.
 */
export async function startLocalS3(
  binary: string,
  dir: string,
  credentials = { accessKeyId: 'lifeline', secretAccessKey: 'lifeline-local-secret' },
  port?: number,
): Promise<LocalS3Server> {
  const chosen = port ?? (await freePort());
  const dataDir = path.join(dir, 'data');
  const dirs = { data: dataDir, meta: path.join(dir, 'meta'), versions: path.join(dir, 'versions') };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const start = () =>
    startServerProcess({
      what: 'versitygw (S3)',
      command: binary,
      args: ['--port', `127.0.0.1:${chosen}`, 'posix', '--sidecar', dirs.meta, '--versioning-dir', dirs.versions, dirs.data],
      env: { ...process.env, ROOT_ACCESS_KEY: credentials.accessKeyId, ROOT_SECRET_KEY: credentials.secretAccessKey },
      logFile: path.join(dir, 'versitygw.log'),
      port: chosen,
    });
  const server: LocalS3Server = {
    endpoint: `http://127.0.0.1:${chosen}`,
    ...credentials,
    dataDir,
    process: await start(),
    stop: () => stopProcess(server.process),
    restart: async () => {
      server.process = await start();
    },
  };
  return server;
}
