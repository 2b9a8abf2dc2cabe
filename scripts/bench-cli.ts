/**
 * `npm run bench:cli`: the cold start of `lifeline --help`, `list` and `status`, as a person at a
 * terminal sees it: a new `node bin/lifeline.js …` process each time, from its start until it exits.
 *   sources   the TypeScript sources through tsx (LIFELINE_FROM_SOURCE=1; what every start did before
 *             issue 12, and what bin/lifeline.js still does while dist/ is stale)
 *   compiled  dist/ (built first when stale, as `npm start` does)
 * The configuration is a demo's: one database (unreachable: neither command connects to it), a local
 * key, an empty repository; `status` talks to a Temporal dev server (TEMPORAL_ADDRESS if set, else one
 * started here). Prints the median and the range of BENCH_RUNS runs (default 10) after one warm-up run,
 * wall time and CPU time (user + system, of the child process), and the load average, since on a
 * shared machine a busy neighbour shows in the wall time first. Prints measured numbers only.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { startTemporalDevServer, type DevServer } from '../src/infra/temporal-dev-server';
import { ensureTemporalCli } from '../src/infra/tools';

const root = path.resolve(__dirname, '..');
const bin = path.join(root, 'bin', 'lifeline.js');
const runs = Number(process.env.BENCH_RUNS ?? 10);

/** CPU time (ms) of this process's children that have been waited for (Linux: /proc/self/stat). */
function childrenCpuMs(): number | undefined {
  try {
    // Fields after the command name (which is in parentheses): cutime and cstime are the 14th and 15th.
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

interface Sample {
  wallMs: number;
  cpuMs?: number;
}

let cwd = root;

function once(args: string[], env: NodeJS.ProcessEnv): Sample {
  const cpu0 = childrenCpuMs();
  const t0 = process.hrtime.bigint();
  const run = spawnSync(process.execPath, [bin, ...args], { cwd, env, encoding: 'utf8' });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu1 = childrenCpuMs();
  // status exits 1 when an RPO is missed (an empty repository misses it): only a crash is an error here.
  if (run.status !== 0 && !(args[0] === 'status' && run.status === 1)) {
    throw new Error(`lifeline ${args.join(' ')} exited ${run.status}: ${run.stderr}`);
  }
  return { wallMs, cpuMs: cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function measure(args: string[], env: NodeJS.ProcessEnv): { wall: number[]; cpu: number[] } {
  once(args, env); // warm-up: the page cache, tsx's transform cache
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = once(args, env);
    wall.push(s.wallMs);
    if (s.cpuMs !== undefined) cpu.push(s.cpuMs);
  }
  return { wall, cpu };
}

async function main() {
  // The compiled side runs what `npm start` would: dist/, built now if it is stale.
  const build = require('./build.js') as { staleness(root: string): string | undefined; build(root: string): string | undefined };
  const why = build.staleness(root);
  if (why) {
    console.log(`Building dist/ first (${why})…`);
    const failed = build.build(root);
    if (failed) throw new Error(`the build failed: ${failed}`);
  }
  const work = mkdtempSync(path.join(tmpdir(), 'lifeline-bench-cli-'));
  cwd = work; // no lifeline.config.* of the checkout's
  let server: DevServer | undefined;
  try {
    let address = process.env.TEMPORAL_ADDRESS;
    if (!address) {
      server = await startTemporalDevServer({ cliPath: await ensureTemporalCli(console.log), dbFile: path.join(work, 'temporal.db'), logFile: path.join(work, 'temporal.log') });
      address = server.address;
    }
    const keyFile = path.join(work, 'master.key');
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: 'postgresql://bench@127.0.0.1:1/ledger',
      BACKUP_DIR: path.join(work, 'backups'),
      BACKUP_ENCRYPTION_KEY: keyFile,
      TEMPORAL_ADDRESS: address,
    };
    once(['keys', 'init', '--file', keyFile], env);
    const commands = [['--help'], ['list'], ['status']];
    const modes = [
      { mode: 'sources (tsx)', env: { ...env, LIFELINE_FROM_SOURCE: '1' } },
      { mode: 'compiled (dist/)', env },
    ];
    const before = loadavg()[0]!;
    const rows: string[][] = [];
    for (const args of commands) {
      for (const { mode, env: modeEnv } of modes) {
        const { wall, cpu } = measure(args, modeEnv);
        const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
        rows.push([`lifeline ${args.join(' ')}`, mode, median(wall).toFixed(0), range(wall), cpu.length ? median(cpu).toFixed(0) : '—']);
      }
    }
    const header = ['command', 'runs from', 'wall ms (median)', 'wall range', 'CPU ms (median)'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    console.log(`\nCold start, median of ${runs} runs (node ${process.version}, load average ${before.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after):`);
    console.log(line(header));
    for (const r of rows) console.log(line(r));
    // bin/lifeline.js runs the sources once a source is newer than the build: then the compiled rows are not.
    const stale = build.staleness(root);
    if (stale) console.log(`\nnote: dist/ went stale during the run (${stale}): some "compiled" runs ran the sources; run again`);
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
