/**
 * `npm run bench:restore`: the restore rows of issue 11's goals, in one run, on the seeded ledger of
 * BENCH_SIZE_MB (default 1024; bench-seed.ts), one column per BACKUP_PARALLEL_JOBS value (BENCH_JOBS,
 * default "1,2"), through the workflows on a Temporal dev server and a production-built `lifeline worker`:
 *   baseline  pg_restore -j 2 of a `pg_dump -Fc -f FILE` archive (which has data offsets) into a new database
 *   full      restoreWorkflow into a new database, approval → verified (the workflow's own RTO figure)
 *   tables    restoreWorkflow --tables public.users into a database that holds the schema alone (so its
 *             pre-restore snapshot stays the same size whatever BENCH_SIZE_MB), approval → verified
 *   drill     drillWorkflow from the offsite destination (a local versitygw), start → verified
 * and, in each, the worker's peak RSS, the repository's and TMPDIR's growth and any unencrypted bytes
 * in them. One backup (the first jobs value's worker makes it) serves every restore. Prints measured
 * numbers only. Results go to .bench/restore-<size>mb.json; with a run at another size on file it
 * prints the `--tables` ratio between the sizes.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { statSync } from 'node:fs';
import path from 'node:path';
import { waitFor } from '../src/infra/net';
import { ensureSystemTools } from '../src/infra/tools';
import { pgTool } from '../src/postgres/binaries';
import {
  approveSignal,
  BACKUP_WORKFLOW_TYPE,
  DRILL_WORKFLOW_TYPE,
  RESTORE_WORKFLOW_TYPE,
  restoreStateQuery,
  type BackupWorkflowResult,
  type DrillReport,
  type RestoreWorkflowInput,
  type RestoreWorkflowResult,
} from '../workflows/definitions';
import { runCommand, watchPhase, type PhaseUsage } from './bench-probes';
import {
  benchJobs,
  benchRepeat,
  bytes,
  compareSizes,
  mib,
  MiB,
  minutes,
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

const RESTORED = 'bench_restored';
const TABLES_TARGET = 'bench_tables';
const SMALL_TABLE = 'public.users';
const PROJECTED_BYTES = 100 * 1024 ** 3;

async function main() {
  const jobsList = benchJobs();
  const repeat = benchRepeat();
  await ensureSystemTools((l) => console.log(l));
  const db = await benchDatabase(root);
  const { cluster } = db;
  const sql = (text: string) => cluster.sql(text);
  const world = await startWorld(
    [
      {
        name: db.name,
        url: db.url,
        production: false,
        drill: {
          from: 'offsite',
          criticalTables: ['public.users', 'public.accounts'],
          sql: ['SELECT NOT EXISTS (SELECT 1 FROM public.accounts a LEFT JOIN public.users u ON u.id = a.user_id WHERE u.id IS NULL)'],
        },
      },
      { name: RESTORED, url: cluster.adminUrl(RESTORED), production: false },
      { name: TABLES_TARGET, url: cluster.adminUrl(TABLES_TARGET), production: false },
    ],
    { s3: true },
  );
  const { results, put, get } = newResults('restore', db, { sizeMb: benchSizeMb(), settings: passedThrough() });
  const usageOf = (prefix: string, jobs: number, u: PhaseUsage) => {
    put(`${prefix}WorkerPeakRss`, jobs, u.workerPeakRss);
    put(`${prefix}WorkerRssBefore`, jobs, u.workerRssBefore);
    put(`${prefix}TreePeakRss`, jobs, u.treePeakRss);
    put(`${prefix}DiskPeakGrowth`, jobs, u.diskPeakGrowth);
    put(`${prefix}UnencryptedPeak`, jobs, u.unencryptedPeak);
    put(`${prefix}Written`, jobs, u.written);
    put(`${prefix}CpuBusy`, jobs, u.cpuBusy);
    for (const [dir, f] of u.unencryptedFiles) notes.push(`jobs=${jobs} ${prefix}: ${f.files} unencrypted file(s), ${bytes([f.bytes])}, in ${path.relative(world.work, dir)}/`);
  };
  const notes: string[] = [];
  const dropDatabase = (name: string) => sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  const stepNames = new Map<number, Set<string>>();

  try {
    console.log(describeRun(db, results, repeat));

    // ---- the baseline: pg_restore -j 2 of a seekable custom archive ----
    const archive = path.join(world.work, 'baseline.dump');
    const dumped = await runCommand(pgTool('pg_dump'), ['-Fc', '-f', archive, `--dbname=${db.url}`]);
    for (let r = 0; r < repeat; r++) {
      await dropDatabase('bench_plain');
      await sql('CREATE DATABASE bench_plain');
      put('pgRestoreMs', 'all', (await runCommand(pgTool('pg_restore'), ['--no-owner', '--jobs=2', `--dbname=${cluster.adminUrl('bench_plain')}`, archive])).ms);
      await dropDatabase('bench_plain');
    }
    console.log(`pg_dump -Fc -f FILE (setup)                        ${seconds([dumped.ms])}, ${mib([statSync(archive).size])}`);
    console.log(`baseline: pg_restore -j 2 of that file             ${seconds(get('pgRestoreMs', 'all'))}`);

    // ---- the --tables target: the ledger's schema, no rows; made again before each run, so that every
    // pre-restore snapshot of it is the same ----
    const schema = path.join(world.work, 'schema.dump');
    await runCommand(pgTool('pg_dump'), ['-Fc', '--schema-only', '-f', schema, `--dbname=${db.url}`]);
    const freshTablesTarget = async () => {
      await dropDatabase(TABLES_TARGET);
      await sql(`CREATE DATABASE ${TABLES_TARGET}`);
      await runCommand(pgTool('pg_restore'), ['--no-owner', `--dbname=${cluster.adminUrl(TABLES_TARGET)}`, schema]);
    };

    /** Runs one phase under watch; the watch stops whatever happens, and counts only when the phase succeeded. */
    const measured = async <T>(prefix: string, jobs: number, run: () => Promise<T>): Promise<T> => {
      const watch = await watchPhase(worker.pid, [world.repo, world.tmp]);
      let value: T;
      try {
        value = await run();
      } catch (err) {
        await watch.stop();
        throw err;
      }
      usageOf(prefix, jobs, await watch.stop());
      return value;
    };
    const approve = (handle: WorkflowHandle) => async () => {
      await handle.signal(approveSignal, { by: 'bench-approver', reason: 'benchmark' });
      return (await handle.result()) as RestoreWorkflowResult;
    };

    const approved = async (input: Omit<RestoreWorkflowInput, 'database' | 'requestedBy'>, jobs: number) => {
      const handle: WorkflowHandle = await world.client.workflow.start(RESTORE_WORKFLOW_TYPE, {
        taskQueue: world.taskQueue,
        workflowId: `bench-restore-${input.mode}-${jobs}-${Date.now()}`,
        args: [{ database: db.name, requestedBy: 'bench', reason: 'benchmark', ...input }],
      });
      // Planning reads the whole backup back before anyone is asked: not part of approval → verified.
      await waitFor('the restore to wait for approval', async () => {
        const state = await handle.query(restoreStateQuery);
        if (state === 'FAILED' || state === 'CANCELLED') throw new Error(`the ${input.mode} restore is ${state}: ${await handle.result().then(() => '', failureText)}`);
        return state === 'WAITING_APPROVAL';
      }, 3_600_000);
      return handle;
    };

    let worker = await world.startWorker(jobsList[0]!);
    console.log(`Taking the backup (backupWorkflow, replicated to the offsite versitygw) with BACKUP_PARALLEL_JOBS=${jobsList[0]}…`);
    const backup = await world.client.workflow.start(BACKUP_WORKFLOW_TYPE, { taskQueue: world.taskQueue, workflowId: `bench-backup-${Date.now()}`, args: [{ database: db.name }] });
    const made = (await backup.result()) as BackupWorkflowResult;
    console.log(
      `backup ${made.backupId}: start → verified ${seconds([msUntil(await timelineOf(backup), 'catalogBackup') ?? NaN])}, ` +
        `stored ${mib([made.storedBytes])}, replication ${made.replication?.map((r) => `${r.destination} ${r.status}`).join(', ') || 'none'}\n`,
    );

    for (const jobs of jobsList) {
      if (worker.jobs !== jobs) {
        await worker.stop();
        console.log(`Starting a worker with BACKUP_PARALLEL_JOBS=${jobs}…`);
        worker = await world.startWorker(jobs);
      }
      for (let r = 0; r < repeat; r++) {
        // ---- full restore into a new database ----
        await dropDatabase(RESTORED);
        try {
          const handle = await approved({ mode: 'full', target: RESTORED }, jobs);
          const result = await measured('full', jobs, approve(handle));
          const timeline = await timelineOf(handle);
          const ms = result.rto!.approvalToVerifiedMs;
          put('fullMs', jobs, ms);
          put('fullRestoreStepMs', jobs, stepMs(timeline, 'restoreIntoScratch'));
          put('fullVerifyStepMs', jobs, stepMs(timeline, 'verifyRestored'));
          put('fullRate', jobs, db.bytes / (ms / 1000));
          put('fullRatePerJob', jobs, db.bytes / (ms / 1000) / jobs);
          put('projected100GiBMs', jobs, (PROJECTED_BYTES / db.bytes) * ms);
        } catch (err) {
          notes.push(`jobs=${jobs}: the full restore failed: ${failureText(err)}`);
        }
        await dropDatabase(RESTORED);

        // ---- --tables public.users into the schema-only database ----
        await freshTablesTarget();
        try {
          const handle = await approved({ mode: 'tables', tables: [SMALL_TABLE], target: TABLES_TARGET }, jobs);
          const result = await measured('tables', jobs, approve(handle));
          const timeline = await timelineOf(handle);
          put('tablesMs', jobs, result.rto!.approvalToVerifiedMs);
          put('tablesSnapshotStepMs', jobs, stepMs(timeline, 'snapshotTarget'));
          put('tablesRestoreStepMs', jobs, stepMs(timeline, 'restoreTables'));
        } catch (err) {
          notes.push(`jobs=${jobs}: the --tables restore failed: ${failureText(err)}`);
        }

        // ---- drill from the offsite destination ----
        try {
          const report = await measured('drill', jobs, async () =>
            (await world.client.workflow.execute(DRILL_WORKFLOW_TYPE, {
              taskQueue: world.taskQueue,
              workflowId: `bench-drill-${jobs}-${Date.now()}`,
              args: [{ database: db.name, kind: 'manual', requestedBy: 'bench' }],
            })) as DrillReport,
          );
          put('drillMs', jobs, report.rto.ms);
          for (const s of report.steps) {
            put(`drillStep:${s.name}`, jobs, s.ms);
            stepNames.set(jobs, (stepNames.get(jobs) ?? new Set()).add(s.name));
          }
        } catch (err) {
          notes.push(`jobs=${jobs}: the drill failed: ${failureText(err)}`);
        }
      }
      for (const x of ratios(get('fullMs', jobs), get('pgRestoreMs', 'all'))) put('fullVsPgRestore', jobs, x);
      for (const x of ratios(get('drillMs', jobs), get('fullMs', jobs))) put('drillVsFull', jobs, x);
    }
    await worker.stop();

    const row = (label: string, key: string, show: (v: Values) => string, goal?: string): Row => [label, jobsList.map((j) => show(get(key, j))), goal];
    const most = (...keys: string[]) => (j: number) => keys.flatMap((k) => get(k, j));
    const rowOf = (label: string, values: (j: number) => Values, show: (v: Values) => string, goal?: string): Row => [label, jobsList.map((j) => show(values(j))), goal];
    const drillSteps = [...new Set([...stepNames.values()].flatMap((s) => [...s]))];
    console.log();
    printTable('restore', jobsList, [
      row('full restore, approval → verified', 'fullMs', seconds),
      row('  against pg_restore -j 2 of a file', 'fullVsPgRestore', times, '≤ 1.0×; ≤ 0.8× (one large table)'),
      row('  restoreIntoScratch step', 'fullRestoreStepMs', seconds),
      row('  verifyRestored step', 'fullVerifyStepMs', seconds),
      row('  rate (database bytes)', 'fullRate', (v) => `${mib(v)}/s`),
      row('  rate per job', 'fullRatePerJob', (v) => `${mib(v)}/s`),
      row('  projected for 100 GiB at this rate', 'projected100GiBMs', minutes, 'RTO 30 min'),
      row(`--tables ${SMALL_TABLE}, approval → verified`, 'tablesMs', seconds, '4 GB / 1 GB ≤ 1.2× (below)'),
      row('  snapshotTarget step (schema-only target)', 'tablesSnapshotStepMs', seconds),
      row('  restoreTables step', 'tablesRestoreStepMs', seconds),
      row('drill, start → verified', 'drillMs', seconds),
      row('  against the full restore', 'drillVsFull', times, '≤ 1.2×'),
      ...drillSteps.map((s) => row(`  ${s} step`, `drillStep:${s}`, seconds)),
      rowOf('worker peak RSS (VmHWM), highest', most('fullWorkerPeakRss', 'tablesWorkerPeakRss', 'drillWorkerPeakRss'), (v) => mib(v.length ? [Math.max(...v)] : []), '≤ 250 MiB'),
      row('  during the full restore', 'fullWorkerPeakRss', mib),
      row('  during the --tables restore', 'tablesWorkerPeakRss', mib),
      row('  during the drill', 'drillWorkerPeakRss', mib),
      row('  worker RSS when the full restore began', 'fullWorkerRssBefore', mib),
      row('  worker and children, peak (full restore)', 'fullTreePeakRss', mib),
      row('repository + TMPDIR peak growth: full', 'fullDiskPeakGrowth', bytes, 'reported'),
      row('  --tables', 'tablesDiskPeakGrowth', bytes),
      row('  drill', 'drillDiskPeakGrowth', bytes),
      rowOf('unencrypted bytes on disk, peak', most('fullUnencryptedPeak', 'tablesUnencryptedPeak', 'drillUnencryptedPeak'), (v) => bytes(v.length ? [Math.max(...v)] : []), '0'),
      row("worker's disk writes: full restore", 'fullWritten', bytes),
      row('  --tables', 'tablesWritten', bytes),
      row('  drill', 'drillWritten', bytes),
      row('CPU busy (all cores): full restore', 'fullCpuBusy', percent),
      row('  drill', 'drillCpuBusy', percent),
    ]);
    for (const n of notes) console.log(`note: ${n}`);
    console.log(`\nResults: ${path.relative(process.cwd(), saveResults(results))}`);
    compareSizes(results, [
      { key: 'tablesMs', label: `--tables ${SMALL_TABLE}, approval → verified`, goal: '≤ 1.2×' },
      { key: 'tablesRestoreStepMs', label: '  its restoreTables step', goal: '—' },
      { key: 'fullWorkerPeakRss', label: 'worker peak RSS, full restore', goal: '≤ 250 MiB at each size, within 10 % of each other' },
      { key: 'drillWorkerPeakRss', label: 'worker peak RSS, drill', goal: '≤ 250 MiB at each size, within 10 % of each other' },
    ]);
  } finally {
    await dropDatabase(RESTORED).catch(() => undefined);
    await dropDatabase(TABLES_TARGET).catch(() => undefined);
    await world.close();
    await cluster.stop();
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
