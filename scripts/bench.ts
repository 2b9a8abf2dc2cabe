/**
 * `npm run bench`: the backup rows of issue 11's goals, in one run, on the seeded ledger of
 * BENCH_SIZE_MB (default 1024; bench-seed.ts), one column per BACKUP_PARALLEL_JOBS value (BENCH_JOBS,
 * default "1,2"):
 *   floor     pg_dump -Fc -Z0 > /dev/null
 *   runbook   pg_dump -Fc | gzip -6 | openssl enc -aes-256-cbc -pbkdf2 (its output size is the size goal)
 *   Lifeline  backupWorkflow on a Temporal dev server and a `lifeline worker` process, start → verified
 *             (the catalogBackup step's completion in the workflow's history), stored size, the worker's
 *             peak RSS, the repository's and TMPDIR's growth and any unencrypted bytes in them.
 * Prints measured numbers only; nothing is asserted. BENCH_REPEAT runs each measurement more than once.
 * Results go to .bench/backup-<size>mb.json.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ensureSystemTools } from '../src/infra/tools';
import { pgTool } from '../src/postgres/binaries';
import { BACKUP_WORKFLOW_TYPE, type BackupWorkflowResult } from '../workflows/definitions';
import { runCommand, watchPhase } from './bench-probes';
import {
  benchJobs,
  benchRepeat,
  bytes,
  compareSizes,
  count,
  mib,
  percent,
  printTable,
  ratios,
  saveResults,
  seconds,
  times,
  type Row,
  type Values,
  newResults,
  describeRun,
} from './bench-report';
import { benchDatabase, benchSizeMb } from './bench-seed';
import { failureText, msUntil, passedThrough, root, startWorld, stepMs, timelineOf } from './bench-world';

async function main() {
  const jobsList = benchJobs();
  const repeat = benchRepeat();
  await ensureSystemTools((l) => console.log(l));
  const db = await benchDatabase(root);
  const world = await startWorld([{ name: db.name, url: db.url, production: false }]);
  const { results, put, get } = newResults('backup', db, { sizeMb: benchSizeMb(), settings: passedThrough() });
  const notes: string[] = [];

  try {
    console.log(describeRun(db, results, repeat));

    const runbookFile = path.join(world.work, 'runbook.dump.gz.enc');
    for (let r = 0; r < repeat; r++) {
      put('floorMs', 'all', (await runCommand(pgTool('pg_dump'), ['-Fc', '-Z0', `--dbname=${db.url}`])).ms);
      // Names reach bash as arguments ($0..$2), never inside the script text.
      const runbook = await runCommand('bash', [
        '-o', 'pipefail', '-c', '"$0" -Fc --dbname="$1" | gzip -6 | openssl enc -aes-256-cbc -pbkdf2 -pass pass:bench -out "$2"',
        pgTool('pg_dump'), db.url, runbookFile,
      ]);
      put('runbookMs', 'all', runbook.ms);
      put('runbookBytes', 'all', statSync(runbookFile).size);
    }
    console.log(`floor: pg_dump -Fc -Z0 > /dev/null                           ${seconds(get('floorMs', 'all'))}`);
    console.log(`runbook: pg_dump -Fc | gzip -6 | openssl enc -aes-256-cbc    ${seconds(get('runbookMs', 'all'))}, ${mib(get('runbookBytes', 'all'))}\n`);

    const formats = new Map<number, Set<string>>();
    for (const jobs of jobsList) {
      console.log(`Starting a worker with BACKUP_PARALLEL_JOBS=${jobs}…`);
      const worker = await world.startWorker(jobs);
      for (let r = 0; r < repeat; r++) {
        const watch = await watchPhase(worker.pid, [world.repo, world.tmp]);
        const handle = await world.client.workflow.start(BACKUP_WORKFLOW_TYPE, {
          taskQueue: world.taskQueue,
          workflowId: `bench-backup-${jobs}-${Date.now()}`,
          args: [{ database: db.name }],
        });
        let result: BackupWorkflowResult | undefined;
        try {
          result = (await handle.result()) as BackupWorkflowResult;
        } catch (err) {
          notes.push(`jobs=${jobs}: the backup failed: ${failureText(err)}`);
        }
        const usage = await watch.stop();
        if (!result) continue;
        const timeline = await timelineOf(handle);
        const manifest = JSON.parse(readFileSync(path.join(world.repo, db.name, `${result.backupId}.manifest.json`), 'utf8')) as {
          format?: string;
          parts?: unknown[];
          sizes: { storedBytes: number; rawBytes: number };
        };
        const set = formats.get(jobs) ?? new Set<string>();
        set.add(`${manifest.format ?? 'stream'}${manifest.parts ? `, ${manifest.parts.length} parts` : ''}`);
        formats.set(jobs, set);
        put('startToVerifiedMs', jobs, msUntil(timeline, 'catalogBackup'));
        put('dumpMs', jobs, stepMs(timeline, 'dumpDatabase'));
        put('verifyMs', jobs, stepMs(timeline, 'verifyBackup'));
        put('storedBytes', jobs, manifest.sizes.storedBytes);
        put('rawBytes', jobs, manifest.sizes.rawBytes);
        put('workerPeakRss', jobs, usage.workerPeakRss);
        put('workerRssBefore', jobs, usage.workerRssBefore);
        put('treePeakRss', jobs, usage.treePeakRss);
        put('diskPeakGrowth', jobs, usage.diskPeakGrowth);
        put('diskExtra', jobs, Math.max(0, usage.diskPeakGrowth - manifest.sizes.storedBytes));
        put('unencryptedPeak', jobs, usage.unencryptedPeak);
        put('written', jobs, usage.written);
        put('cpuBusy', jobs, usage.cpuBusy);
        put('cpuIowait', jobs, usage.cpuIowait);
        for (const [dir, f] of usage.unencryptedFiles) notes.push(`jobs=${jobs}: ${f.files} unencrypted file(s), ${bytes([f.bytes])}, in ${path.relative(world.work, dir)}/`);
      }
      await worker.stop();
      for (const x of ratios(get('startToVerifiedMs', jobs), get('floorMs', 'all'))) put('startToVerifiedVsFloor', jobs, x);
      for (const x of ratios(get('storedBytes', jobs), get('runbookBytes', 'all'))) put('storedVsRunbook', jobs, x);
    }

    const row = (label: string, key: string, show: (v: Values) => string, goal?: string): Row => [label, jobsList.map((j) => show(get(key, j))), goal];
    console.log();
    printTable('backup', jobsList, [
      row('backup workflow, start → verified', 'startToVerifiedMs', seconds),
      row('  against the floor', 'startToVerifiedVsFloor', times, '≤ 1.3×'),
      row('  dumpDatabase step', 'dumpMs', seconds),
      row('  verifyBackup step', 'verifyMs', seconds),
      ['format', jobsList.map((j) => [...(formats.get(j) ?? [])].join(' / ') || '—')],
      row('dumped (raw) size', 'rawBytes', mib),
      row('stored size', 'storedBytes', mib),
      row("  against the runbook's", 'storedVsRunbook', times, '≤ 1.0×'),
      row('worker peak RSS (VmHWM)', 'workerPeakRss', mib, '≤ 250 MiB'),
      row('  worker RSS when the backup started', 'workerRssBefore', mib),
      row('  worker and its children, peak (sampled)', 'treePeakRss', mib),
      row('repository + TMPDIR, peak growth', 'diskPeakGrowth', mib),
      row('  beyond the stored size (extra disk)', 'diskExtra', bytes, 'reported; none beyond the parts'),
      row('unencrypted bytes on disk, peak', 'unencryptedPeak', bytes, '0'),
      row("worker's disk writes (write_bytes)", 'written', mib),
      row('CPU busy (all cores)', 'cpuBusy', percent),
      row('CPU waiting for I/O', 'cpuIowait', percent),
      ['runs', jobsList.map((j) => count([get('startToVerifiedMs', j).length]))],
    ]);
    for (const n of notes) console.log(`note: ${n}`);
    console.log(`\nResults: ${path.relative(process.cwd(), saveResults(results))}`);
    compareSizes(results, [
      { key: 'workerPeakRss', label: 'worker peak RSS', goal: '≤ 250 MiB at each size, within 10 % of each other' },
    ]);
  } finally {
    await world.close();
    await db.cluster.stop();
  }
}

// Exits when done: an AWS or Temporal client's idle sockets must not keep a finished run waiting.
main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
