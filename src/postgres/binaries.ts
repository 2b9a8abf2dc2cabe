import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const DEBIAN_ROOT = '/usr/lib/postgresql';

/** Installed PostgreSQL binary folders, newest major version first (Debian layout). */
export function debianBinDirs(): string[] {
  if (!existsSync(DEBIAN_ROOT)) return [];
  return readdirSync(DEBIAN_ROOT)
    .filter((v) => /^\d+$/.test(v) && existsSync(path.join(DEBIAN_ROOT, v, 'bin', 'pg_dump')))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => path.join(DEBIAN_ROOT, v, 'bin'));
}

/**
 * The folder of the client tools to use: LIFELINE_PG_BIN, else the newest Debian install (a newer
 * pg_dump reads older servers, never the reverse), else whatever is on PATH ('').
 */
export function pgBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.LIFELINE_PG_BIN ?? debianBinDirs()[0] ?? '';
}

export function pgTool(name: 'pg_dump' | 'pg_restore' | 'psql' | 'initdb' | 'pg_ctl' | 'postgres', env?: NodeJS.ProcessEnv): string {
  const dir = pgBinDir(env);
  return dir ? path.join(dir, name) : name;
}

/** "pg_dump (PostgreSQL) 15.20 (Debian ...)" → "15.20". */
export async function toolVersion(binary: string): Promise<string> {
  const { stdout } = await run(binary, ['--version']);
  return /(\d+(?:\.\d+)+)/.exec(stdout)?.[1] ?? stdout.trim();
}
