import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { LifelineError } from '../errors';
import { debianBinDirs } from '../postgres/binaries';
import { toolsBinDir } from './paths';

const run = promisify(execFile);

export const TEMPORAL_CLI_VERSION = '1.5.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
const MIN_GO = [1, 25];

type Say = (line: string) => void;

async function versionOf(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(binary, ['--version']);
    return stdout.trim();
  } catch {
    return undefined;
  }
}

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

function runVisible(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with status ${code}`))));
  });
}

/**
 * The Temporal CLI (dev server): TEMPORAL_CLI_PATH, else our pinned build in .tools/bin, else one on
 * PATH, else built now with `go install` (several minutes the first time; Go's caches make it fast after).
 */
export async function ensureTemporalCli(say: Say = () => undefined): Promise<string> {
  const explicit = process.env.TEMPORAL_CLI_PATH;
  if (explicit) {
    if (!existsSync(explicit)) throw new LifelineError('ToolMissing', `TEMPORAL_CLI_PATH=${explicit} does not exist`);
    return explicit;
  }
  const pinned = path.join(toolsBinDir(), 'temporal');
  if (existsSync(pinned) && (await versionOf(pinned))?.includes(`version ${TEMPORAL_CLI_VERSION}`)) return pinned;
  const fromPath = await onPath('temporal');
  if (fromPath && (await versionOf(fromPath))) return fromPath;

  const go = (await onPath('go')) ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  const goVersion = go ? /go(\d+)\.(\d+)/.exec((await run(go, ['version'])).stdout) : null;
  if (!go || !goVersion || Number(goVersion[1]) * 100 + Number(goVersion[2]) < MIN_GO[0]! * 100 + MIN_GO[1]!) {
    throw new LifelineError('ToolMissing', `the Temporal CLI ${TEMPORAL_CLI_VERSION} is not installed and cannot be built (needs Go >= ${MIN_GO.join('.')}${go ? `, found ${goVersion?.[0] ?? 'unknown'}` : ', Go not found'})`, {
      hint: 'install Go 1.25+ and run again, or set TEMPORAL_CLI_PATH to a temporal binary, or TEMPORAL_ADDRESS to a running server',
    });
  }
  say(`Building the Temporal CLI v${TEMPORAL_CLI_VERSION} into ${toolsBinDir()} (first build takes about 5 minutes on 2 cores)…`);
  await runVisible(go, ['install', '-ldflags', `-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`, `${TEMPORAL_CLI_MODULE}@v${TEMPORAL_CLI_VERSION}`], {
    ...process.env,
    GOBIN: toolsBinDir(),
    CGO_ENABLED: '0',
  });
  return pinned;
}

async function aptInstall(packages: string[], say: Say): Promise<void> {
  say(`Installing ${packages.join(' ')} with apt-get…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runVisible('apt-get', ['update', '-qq'], env);
  await runVisible('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], env);
}

const canApt = () => process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');

/** PostgreSQL server and client programs (Debian's postgresql-15), and the zstd program. */
export async function ensureSystemTools(say: Say = () => undefined): Promise<void> {
  const missing: string[] = [];
  const pgDirs = process.env.LIFELINE_PG_BIN ? [process.env.LIFELINE_PG_BIN] : debianBinDirs();
  if (!pgDirs.some((dir) => existsSync(path.join(dir, 'initdb')))) missing.push('postgresql-15');
  if (!(await onPath('zstd'))) missing.push('zstd');
  if (missing.length === 0) return;
  if (!canApt()) {
    throw new LifelineError('ToolMissing', `missing system packages: ${missing.join(', ')}`, {
      hint: `install them (Debian/Ubuntu: sudo apt-get install -y ${missing.join(' ')}) and run again`,
    });
  }
  await aptInstall(missing, say);
}
