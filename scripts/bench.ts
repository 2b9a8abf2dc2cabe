/**
 * `npm run bench`: seeds a MoneyFlow-like ledger of BENCH_SIZE_MB (default 1024) and times, in one run,
 *   (a) pg_dump -Fc -Z0 > /dev/null                                  the floor
 *   (b) pg_dump -Fc | gzip -6 | openssl enc -aes-256-cbc -pbkdf2      the runbook's pipeline
 *   (c) Lifeline's backup path: pg_dump -Z0 → zstd → AES-256-GCM → SHA-256 → repository
 * printing wall time, MB/s (of the raw dump), output size and peak RSS (summed over the process tree).
 * The seeded cluster is kept in .lifeline/bench-postgres, so later runs skip seeding.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createKeyFile } from '../src/crypto/keys/local-key-file';
import { PrivateCluster } from '../src/infra/postgres-cluster';
import { seedMoneyFlowAt } from '../src/infra/moneyflow-seed';
import { ensureSystemTools } from '../src/infra/tools';
import { pgTool } from '../src/postgres/binaries';

const root = path.resolve(__dirname, '..');
const MB = 1024 * 1024;
/** Bytes per ledger row on disk, table and indexes (measured on a 1 GB seed: ~215). */
const BYTES_PER_ROW = 215;

function treeRss(pid: number): number {
  let kb = 0;
  const visit = (p: number) => {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      kb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const children = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim();
        for (const c of children ? children.split(' ') : []) visit(Number(c));
      }
    } catch {
      /* the process ended meanwhile */
    }
  };
  visit(pid);
  return kb * 1024;
}

interface Measured {
  ms: number;
  peakRss: number;
  stdout: string;
}

/** Runs a command, sampling the RSS of its whole process tree every 50 ms. */
function measure(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, treeRss(child.pid!))), 50);
    child.once('error', reject);
    child.once('close', (code) => {
      clearInterval(sampler);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) reject(new Error(`${command} exited with ${code}`));
      else resolve({ ms, peakRss, stdout });
    });
  });
}

async function seeded(cluster: PrivateCluster, sizeMb: number): Promise<{ url: string; bytes: number }> {
  const name = `ledger_${sizeMb}mb`;
  const fresh = (await cluster.sql(`SELECT 1 FROM pg_database WHERE datname = '${name}'`)).length === 0;
  const url = await cluster.createDatabase(name, 'bench', 'bench-password');
  if (fresh) {
    const rows = Math.round((sizeMb * MB) / BYTES_PER_ROW);
    console.log(`Seeding ${name}: ${rows.toLocaleString()} ledger rows (takes a while once)…`);
    await seedMoneyFlowAt(url, { users: 20_000, transactions: rows });
  }
  const [size] = await cluster.sql<{ n: string }>(`SELECT pg_database_size('${name}') AS n`);
  return { url, bytes: Number(size!.n) };
}

const fmt = (n: number) => (n / MB).toFixed(1);

async function main() {
  const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 1024);
  await ensureSystemTools((l) => console.log(l));
  const cluster = await new PrivateCluster(path.join(root, '.lifeline', 'bench-postgres')).start();
  const { url, bytes } = await seeded(cluster, sizeMb);
  const work = mkdtempSync(path.join(tmpdir(), 'lifeline-bench-'));
  const keyFile = path.join(work, 'master.key');
  await createKeyFile(keyFile);
  const safeUrl = new URL(url);
  safeUrl.password = '';
  const env = { ...process.env, PGPASSWORD: 'bench-password' };
  console.log(`Database: ${fmt(bytes)} MiB on disk (pg_database_size). 2 cores. Each pipeline runs once, in this order.\n`);

  const floor = await measure('bash', ['-o', 'pipefail', '-c', `"${pgTool('pg_dump')}" -Fc -Z0 --dbname="${safeUrl}" | wc -c`], env);
  const rawBytes = Number(floor.stdout.trim());
  const runbookOut = path.join(work, 'runbook.sql.gz.enc');
  const runbook = await measure(
    'bash',
    ['-o', 'pipefail', '-c', `"${pgTool('pg_dump')}" -Fc --dbname="${safeUrl}" | gzip -6 | openssl enc -aes-256-cbc -pbkdf2 -pass pass:bench -out ${runbookOut}`],
    env,
  );
  const lifeline = await measure(process.execPath, ['--import', 'tsx', path.join(root, 'scripts', 'bench-backup.ts')], {
    ...process.env,
    DATABASE_URL: url,
    BACKUP_DIR: path.join(work, 'repo'),
    BACKUP_ENCRYPTION_KEY: keyFile,
    LIFELINE_CONFIG: '',
  });
  const { ms: pipelineMs, record } = JSON.parse(lifeline.stdout.trim().split('\n').at(-1)!);

  const rows = [
    ['(a) pg_dump -Fc -Z0 > /dev/null', floor.ms, rawBytes, floor.peakRss],
    ['(b) pg_dump -Fc | gzip -6 | openssl aes-256-cbc', runbook.ms, statSync(runbookOut).size, runbook.peakRss],
    ['(c) lifeline: -Z0 | zstd | aes-256-gcm | sha256', pipelineMs, record.sizes.storedBytes, lifeline.peakRss],
  ] as const;
  console.log('pipeline                                          wall s    MB/s   output MiB   peak RSS MiB');
  for (const [name, ms, out, rss] of rows) {
    console.log(
      `${name.padEnd(50)}${(ms / 1000).toFixed(1).padStart(6)}  ${(rawBytes / MB / (ms / 1000)).toFixed(0).padStart(6)}  ${fmt(out).padStart(11)}  ${fmt(rss).padStart(13)}`,
    );
  }
  console.log(`\nraw dump ${fmt(rawBytes)} MiB; (c) process total incl. Node start ${(lifeline.ms / 1000).toFixed(1)} s; zstd level ${record.compression.level}`);
  console.log(`(c)/(a) time ${(pipelineMs / floor.ms).toFixed(2)}x (target <= 1.3x)   (c)/(b) time ${(pipelineMs / runbook.ms).toFixed(2)}x   (c)/(b) size ${(record.sizes.storedBytes / statSync(runbookOut).size).toFixed(2)}x (target <= 1.0x)`);
  rmSync(work, { recursive: true, force: true });
  await cluster.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
