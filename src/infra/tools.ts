import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { LifelineError } from '../errors';
import { debianBinDirs } from '../postgres/binaries';
import { toolsBinDir } from './paths';

const run = promisify(execFile);

export const TEMPORAL_CLI_VERSION = '1.5.1';
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

async function goBinary(): Promise<{ go: string; version: string } | undefined> {
  const go = (await onPath('go')) ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) return undefined;
  const m = /go(\d+\.\d+)/.exec((await run(go, ['version'])).stdout);
  return m ? { go, version: m[1]! } : undefined;
}

function versionAtLeast(version: string, min: number[]): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major * 1000 + minor >= min[0]! * 1000 + min[1]!;
}

interface GoTool {
  /** The binary's name in .tools/bin. */
  binary: string;
  module: string;
  version: string;
  ldflags?: string;
  /** Environment variable that points at an existing binary instead. */
  pathEnv: string;
  /** Roughly how long the first build takes, for the message. */
  buildTime: string;
}

/**
 * A server built from the Go module proxy into .tools/bin, pinned: built once (Go's caches make a
 * rebuild fast), rebuilt only when the pin changes. A `<binary>.version` file records the pin.
 */
async function ensureGoTool(tool: GoTool, say: Say): Promise<string> {
  const explicit = process.env[tool.pathEnv];
  if (explicit) {
    if (!existsSync(explicit)) throw new LifelineError('ToolMissing', `${tool.pathEnv}=${explicit} does not exist`);
    return explicit;
  }
  const pinned = path.join(toolsBinDir(), tool.binary);
  const stamp = `${pinned}.version`;
  if (existsSync(pinned) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === tool.version) return pinned;
  const go = await goBinary();
  if (!go || !versionAtLeast(go.version, MIN_GO)) {
    throw new LifelineError('ToolMissing', `${tool.binary} ${tool.version} is not installed and cannot be built (needs Go >= ${MIN_GO.join('.')}${go ? `, found ${go.version}` : ', Go not found'})`, {
      hint: `install Go ${MIN_GO.join('.')}+ and run again, or set ${tool.pathEnv} to a ${tool.binary} binary`,
    });
  }
  say(`Building ${tool.binary} ${tool.version} into ${toolsBinDir()} (the first build takes ${tool.buildTime} on 2 cores)…`);
  await runVisible(go.go, ['install', ...(tool.ldflags ? ['-ldflags', tool.ldflags] : []), `${tool.module}@${tool.version}`], {
    ...process.env,
    GOBIN: toolsBinDir(),
    CGO_ENABLED: '0',
  });
  writeFileSync(stamp, tool.version + '\n');
  return pinned;
}

/**
 * The Temporal CLI (dev server): TEMPORAL_CLI_PATH, else our pinned build in .tools/bin, else a
 * `temporal` on PATH, else built now with `go install` (minutes the first time).
 */
export async function ensureTemporalCli(say: Say = () => undefined): Promise<string> {
  if (!process.env.TEMPORAL_CLI_PATH) {
    const pinned = path.join(toolsBinDir(), 'temporal');
    if (existsSync(pinned) && (await versionOf(pinned))?.includes(`version ${TEMPORAL_CLI_VERSION}`)) return pinned;
    const fromPath = await onPath('temporal');
    if (fromPath && (await versionOf(fromPath))) return fromPath;
  }
  return ensureGoTool(
    {
      binary: 'temporal',
      module: 'github.com/temporalio/cli/cmd/temporal',
      version: `v${TEMPORAL_CLI_VERSION}`,
      ldflags: `-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`,
      pathEnv: 'TEMPORAL_CLI_PATH',
      buildTime: 'about 5 minutes',
    },
    say,
  );
}

/** versitygw, the S3 server the tests (and a local offsite demo) use. */
export const ensureVersitygw = (say: Say = () => undefined) =>
  ensureGoTool(
    { binary: 'versitygw', module: 'github.com/versity/versitygw/cmd/versitygw', version: 'v1.7.0', pathEnv: 'VERSITYGW_PATH', buildTime: 'about 2 minutes' },
    say,
  );

/** local-kms, an implementation of the AWS KMS API for tests. */
export const ensureLocalKms = (say: Say = () => undefined) =>
  ensureGoTool(
    {
      binary: 'local-kms',
      module: 'github.com/nsmithuk/local-kms',
      version: 'v0.0.0-20260228092603-2a5e92d09ab6',
      pathEnv: 'LOCAL_KMS_PATH',
      buildTime: 'about a minute',
    },
    say,
  );

async function aptInstall(packages: string[], say: Say): Promise<void> {
  say(`Installing ${packages.join(' ')} with apt-get…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runVisible('apt-get', ['update', '-qq'], env);
  // Another installer (a second test file, the operator) may hold dpkg's lock: wait for it instead of failing.
  await runVisible('apt-get', ['install', '-y', '-qq', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=600', ...packages], env);
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

/** A program from a Debian package that only some tests need: found, or installed with apt-get when we are root. */
interface AptTool {
  /** Environment variable naming the binary, which wins. */
  envVar: string;
  /** Where the package puts it (checked before PATH). */
  paths: string[];
  command: string;
  aptPackage: string;
  /** What it is for, in the error when it is missing. */
  usedFor: string;
}

async function ensureAptTool(tool: AptTool, say: Say): Promise<string> {
  const explicit = process.env[tool.envVar];
  if (explicit) {
    if (!existsSync(explicit)) throw new LifelineError('ToolMissing', `${tool.envVar}=${explicit} does not exist`);
    return explicit;
  }
  const found = tool.paths.find((p) => existsSync(p)) ?? (await onPath(tool.command));
  if (found) return found;
  if (!canApt()) {
    throw new LifelineError('ToolMissing', `${tool.command} is not installed (${tool.usedFor})`, {
      hint: `install it (Debian/Ubuntu: sudo apt-get install -y ${tool.aptPackage}) or set ${tool.envVar} to a ${tool.command} binary`,
    });
  }
  await aptInstall([tool.aptPackage], say);
  return tool.paths[0]!;
}

/** Debian's Chromium, for the Web UI test (CHROMIUM_PATH wins). */
export function ensureChromium(say: Say = () => undefined): Promise<string> {
  return ensureAptTool(
    { envVar: 'CHROMIUM_PATH', paths: ['/usr/bin/chromium', '/usr/bin/chromium-browser'], command: 'chromium', aptPackage: 'chromium', usedFor: 'the Web UI test drives it' },
    say,
  );
}

/** promtool (Debian's `prometheus` package): checks the metrics text and the example alert rules in deploy/prometheus/. */
export function ensurePromtool(say: Say = () => undefined): Promise<string> {
  return ensureAptTool(
    { envVar: 'PROMTOOL_PATH', paths: ['/usr/bin/promtool'], command: 'promtool', aptPackage: 'prometheus', usedFor: 'the metrics test checks the metrics text and the alert rules with it' },
    say,
  );
}

/**
 * A Compose validator for docker-compose.temporal.yml (Debian's docker-compose 1.29; these machines have
 * no Docker engine, and `config` needs none).
 */
export function ensureDockerCompose(say: Say = () => undefined): Promise<string> {
  return ensureAptTool(
    { envVar: 'DOCKER_COMPOSE_PATH', paths: ['/usr/bin/docker-compose'], command: 'docker-compose', aptPackage: 'docker-compose', usedFor: 'the compose test validates docker-compose.temporal.yml with it' },
    say,
  );
}
