/**
 * `npm run bench:restore`: on the benchmark's ledger database (run `npm run bench` first to seed it),
 * times plain pg_restore of a local dump file (single job and -j BACKUP_PARALLEL_JOBS) next to
 * Lifeline's restore path (decrypt → decompress → pg_restore, streamed), and what staging for -j would give.
 */
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { catalogBackup } from '../src/backup/catalog-backup';
import { dumpToRepository } from '../src/backup/dump';
import { localStorageFor } from '../src/backup/repository';
import { verifyBackup } from '../src/backup/verify';
import { backupId } from '../src/catalog/naming';
import { loadConfig } from '../src/config/load';
import { keyringFor } from '../src/crypto/keys';
import { createKeyFile } from '../src/crypto/keys/local-key-file';
import { PrivateCluster } from '../src/infra/postgres-cluster';
import { pgTool } from '../src/postgres/binaries';
import { restoreIntoScratch } from '../src/restore/full';
import { openBackup } from '../src/backup/read-backup';
import { runPipeline } from '../src/pipeline/run';

const root = path.resolve(__dirname, '..');

async function timed<T>(fn: () => Promise<T> | T): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function main() {
  const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 1024);
  const jobs = Number(process.env.BACKUP_PARALLEL_JOBS ?? 2);
  const cluster = await new PrivateCluster(path.join(root, '.lifeline', 'bench-postgres')).start();
  const name = `ledger_${sizeMb}mb`;
  if (!(await cluster.sql(`SELECT 1 FROM pg_database WHERE datname = '${name}'`)).length) throw new Error(`run npm run bench first (no ${name})`);
  const work = mkdtempSync(path.join(tmpdir(), 'lifeline-bench-restore-'));
  const keyFile = path.join(work, 'master.key');
  await createKeyFile(keyFile);
  const single = loadConfig({ cwd: work, env: { DATABASE_URL: cluster.adminUrl(name), BACKUP_DIR: path.join(work, 'repo'), BACKUP_ENCRYPTION_KEY: keyFile } });
  const db = single.databases[0]!;
  const record = await dumpToRepository(single, db, { backupId: backupId(db.name, new Date()), type: 'full' });
  const manifest = await catalogBackup(db, record, (await verifyBackup(localStorageFor(db), record, keyringFor(single))).verification, 'bench', keyringFor(single));
  const file = path.join(work, 'plain.dump');
  execFileSync(pgTool('pg_dump'), ['-Fc', '-Z0', '-f', file, `--dbname=${cluster.adminUrl(name)}`]);

  const fresh = async (target: string) => {
    await cluster.sql(`DROP DATABASE IF EXISTS ${target}`);
    await cluster.sql(`CREATE DATABASE ${target}`);
  };
  const plain = async (j: number) => {
    await fresh('bench_plain');
    return timed(() => execFileSync(pgTool('pg_restore'), ['--no-owner', `--jobs=${j}`, `--dbname=${cluster.adminUrl('bench_plain')}`, file]));
  };
  const lifeline = () => timed(() => restoreIntoScratch(single, { storage: localStorageFor(db), manifest, target: db, scratch: 'bench_lifeline', schemaOnly: false }));
  // What -j would do with Lifeline's archive: stage it decrypted, then pg_restore -j.
  const staged = async () => {
    const file = path.join(work, 'staged.dump');
    const chain = await openBackup(localStorageFor(db), manifest, keyringFor(single));
    await fresh('bench_plain');
    return timed(async () => {
      await runPipeline([...chain.stages, createWriteStream(file)]);
      execFileSync(pgTool('pg_restore'), ['--no-owner', `--jobs=${jobs}`, `--dbname=${cluster.adminUrl('bench_plain')}`, file]);
    });
  };

  console.log(`Database ${name}: dump ${(manifest.sizes.rawBytes / 2 ** 20).toFixed(1)} MiB, stored ${(manifest.sizes.storedBytes / 2 ** 20).toFixed(1)} MiB; 2 cores.\n`);
  const rows = [
    ['pg_restore from a local .dump file, 1 job', await plain(1)],
    [`pg_restore from a local .dump file, -j ${jobs}`, await plain(jobs)],
    ['lifeline: decrypt → unzstd → pg_restore (streamed, 1 job)', await lifeline()],
    [`(not used) decrypt → unzstd → staged file → pg_restore -j ${jobs}`, await staged()],
  ] as const;
  for (const [label, s] of rows) console.log(`${label.padEnd(62)} ${s.toFixed(1).padStart(6)} s`);
  console.log('\nThe staged -j row is why Lifeline streams: an archive pg_dump wrote to a pipe has no data offsets,');
  console.log('so parallel pg_restore workers rescan it; pg_dump writing to a seekable file is what makes -j pay.');
  await cluster.sql('DROP DATABASE IF EXISTS bench_plain');
  await cluster.sql('DROP DATABASE IF EXISTS bench_lifeline WITH (FORCE)');
  rmSync(work, { recursive: true, force: true });
  await cluster.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
