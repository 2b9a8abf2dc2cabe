import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { LifelineError } from '../errors';

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

/**
 * The first minor release of each major version whose pg_restore text output (`-f -`, piped into
 * psql by table restores) a table name cannot break out of to run a psql meta-command such as `\!`
 * (CVE-2025-8715: a newline in a name ended the `-- Name:` comment line).
 */
const SAFE_SCRIPT_OUTPUT: Record<number, number> = { 13: 22, 14: 19, 15: 14, 16: 10, 17: 6 };

/** True if this pg_restore version's script output is safe to give psql, whatever the names in it. */
export function scriptOutputIsSafe(version: string): boolean {
  const [major, minor] = version.split('.').map(Number);
  if (!Number.isInteger(major) || !Number.isInteger(minor)) return false;
  if (major! >= 18) return true;
  const first = SAFE_SCRIPT_OUTPUT[major!];
  return first !== undefined && minor! >= first;
}

/** Refuses to pipe pg_restore's script output into psql from a version that names can turn into commands. */
export async function requireSafeScriptOutput(binary: string): Promise<void> {
  const version = await toolVersion(binary);
  if (!scriptOutputIsSafe(version)) {
    throw new LifelineError('ToolTooOld', `${binary} is version ${version}: a table name in its script output can run a psql command (CVE-2025-8715)`, {
      hint: `upgrade the PostgreSQL client tools to ${Object.entries(SAFE_SCRIPT_OUTPUT).map(([m, n]) => `${m}.${n}`).join(', ')} or newer (or point LIFELINE_PG_BIN at them)`,
    });
  }
}
