/**
 * The servers and the worker the benchmarks measure: a Temporal dev server, optionally versitygw as the
 * offsite destination, a key file, a configuration file, and `lifeline worker`, built as for production,
 * as a process of its own (so its peak RSS is the worker's, not the benchmark's), one per
 * BACKUP_PARALLEL_JOBS value.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Client, type WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { tsToMs } from '@temporalio/common/lib/time';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createKeyFile } from '../src/crypto/keys/local-key-file';
import { waitFor } from '../src/infra/net';
import { startLocalS3, type LocalS3Server } from '../src/infra/s3-server';
import { stopProcess } from '../src/infra/server-process';
import { startTemporalDevServer, type DevServer } from '../src/infra/temporal-dev-server';
import { ensureTemporalCli, ensureVersitygw } from '../src/infra/tools';
import { loadConfig } from '../src/config/load';
import { connectTemporal } from '../src/temporal/client';
import { dataConverterFor } from '../src/temporal/data-converter';
import { missingFlags, workerEnv } from '../bin/worker-settings';

export const root = path.resolve(__dirname, '..');
const TASK_QUEUE = 'bench';
const BUCKET = 'bench-offsite';
const quiet = new DefaultLogger('WARN');

/**
 * Settings of the caller's environment that reach the worker (format, part size, compression);
 * every other Lifeline, Temporal and libpq setting comes from the benchmark alone.
 */
const PASSED_THROUGH = ['BACKUP_FORMAT', 'BACKUP_PART_SIZE', 'BACKUP_COMPRESSION', 'BACKUP_COMPRESSION_LEVEL', 'BACKUP_SPOOL_DIR', 'LIFELINE_PG_BIN'];
const CONTROLLED = /^(DATABASE_URL|LIFELINE_|BACKUP_|TEMPORAL_|PG|AWS_)/;

export function passedThrough(): string[] {
  return PASSED_THROUGH.filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
}

export interface BenchWorld {
  work: string;
  repo: string;
  /** The worker's TMPDIR. */
  tmp: string;
  client: Client;
  taskQueue: string;
  s3?: LocalS3Server;
  close(): Promise<void>;
  startWorker(jobs: number): Promise<BenchWorker>;
}

export interface BenchWorker {
  pid: number;
  jobs: number;
  stop(): Promise<void>;
}

const BUILD = path.join(root, '.bench', 'build');

/**
 * The worker as a production install runs it: `npm run build` (tsc with tsconfig.build.json, then the
 * workflows bundled once) into .bench/build, so that neither tsx nor webpack at start adds to the RSS
 * measured. A package.json copy makes .bench/build the project root the build looks for its bundle in.
 * Returns the compiled CLI's path.
 */
async function buildWorker(): Promise<string> {
  console.log('Building the worker into .bench/build (as npm run build does)…');
  rmSync(BUILD, { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', BUILD, '--sourceMap', 'false'], {
    cwd: root,
    encoding: 'utf8',
  });
  const cli = path.join(BUILD, 'src', 'cli', 'main.js');
  if (!existsSync(cli)) throw new Error(`tsc built no ${cli}:\n${tsc.stdout}${tsc.stderr}`);
  if (tsc.status !== 0) console.log(`note: tsc reported errors (the build was emitted anyway):\n${tsc.stdout.split('\n').slice(0, 10).join('\n')}`);
  copyFileSync(path.join(root, 'package.json'), path.join(BUILD, 'package.json'));
  mkdirSync(path.join(BUILD, 'dist'));
  const { code } = await bundleWorkflowCode({ workflowsPath: path.join(root, 'workflows', 'index.ts'), logger: quiet });
  writeFileSync(path.join(BUILD, 'dist', 'workflow-bundle.js'), code);
  return cli;
}

/** Servers, key and configuration (databases as lifeline.config.json entries); close() removes everything. */
export async function startWorld(databases: object[], options: { s3?: boolean } = {}): Promise<BenchWorld> {
  const work = mkdtempSync(path.join(tmpdir(), 'lifeline-bench-'));
  const repo = path.join(work, 'repo');
  const tmp = path.join(work, 'tmp');
  mkdirSync(tmp);
  const stops: Array<() => Promise<unknown>> = [async () => rmSync(work, { recursive: true, force: true })];
  const close = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const keyFile = path.join(work, 'keys', 'master.key');
    await createKeyFile(keyFile);
    const configFile = path.join(work, 'lifeline.config.json');
    writeFileSync(configFile, JSON.stringify({ databases }, null, 2));
    const temporalServer: DevServer = await startTemporalDevServer({
      cliPath: await ensureTemporalCli(console.log),
      dbFile: path.join(work, 'temporal', 'temporal.db'),
      logFile: path.join(work, 'temporal', 'temporal.log'),
    });
    stops.push(() => temporalServer.stop());
    let s3: LocalS3Server | undefined;
    if (options.s3) {
      s3 = await startLocalS3(await ensureVersitygw(console.log), path.join(work, 's3'));
      stops.push(() => s3!.stop());
      const admin = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3 });
      await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
      admin.destroy();
    }
    const cli = await buildWorker();
    const env = (jobs: number): NodeJS.ProcessEnv => {
      const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !CONTROLLED.test(k) || PASSED_THROUGH.includes(k)));
      return {
        ...base,
        LIFELINE_CONFIG: configFile,
        BACKUP_DIR: repo,
        BACKUP_ENCRYPTION_KEY: keyFile,
        BACKUP_PARALLEL_JOBS: String(jobs),
        TEMPORAL_ADDRESS: temporalServer.address,
        LIFELINE_TASK_QUEUE: TASK_QUEUE,
        TMPDIR: tmp,
        LOG_LEVEL: 'info',
        ...(s3 && {
          BACKUP_S3_BUCKET: BUCKET,
          BACKUP_S3_ENDPOINT: s3.endpoint,
          BACKUP_S3_ACCESS_KEY_ID: s3.accessKeyId,
          BACKUP_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
        }),
      };
    };

    // With the workers' payload codec (the same repository and key file).
    const client = new Client({ connection: await connectTemporal(temporalServer.address), dataConverter: dataConverterFor(loadConfig({ cwd: work, env: env(1) })) });
    stops.push(() => client.connection.close());

    const startWorker = async (jobs: number): Promise<BenchWorker> => {
      const logFile = path.join(work, `worker-jobs${jobs}.log`);
      const log = openSync(logFile, 'a');
      // With the node flags and environment `lifeline worker` starts with (bin/worker-settings.js).
      const workerEnvironment = env(jobs);
      const child: ChildProcess = spawn(process.execPath, [...missingFlags([], workerEnvironment), cli, 'worker'], {
        cwd: root,
        env: workerEnv(workerEnvironment),
        stdio: ['ignore', log, log],
      });
      closeSync(log);
      let exited: string | undefined;
      child.once('exit', (code, signal) => (exited = `the worker exited (${signal ?? code}); its log ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-3000)}`));
      await waitFor('the worker', async () => readFileSync(logFile, 'utf8').includes('"worker started"'), 180_000, () => exited);
      const stop = () => stopProcess(child, 30_000);
      stops.push(stop);
      return { pid: child.pid!, jobs, stop };
    };

    return { work, repo, tmp, client, taskQueue: TASK_QUEUE, s3, close, startWorker };
  } catch (err) {
    await close();
    throw err;
  }
}

/** When each activity of a workflow ran, from its history: the benchmark's clock is the server's. */
export interface Timeline {
  startedAt: number;
  closedAt?: number;
  steps: Array<{ name: string; scheduledAt: number; completedAt?: number }>;
}

export async function timelineOf(handle: WorkflowHandle): Promise<Timeline> {
  const history = await handle.fetchHistory();
  const events: temporal.api.history.v1.IHistoryEvent[] = history.events ?? [];
  const at = (e: temporal.api.history.v1.IHistoryEvent) => tsToMs(e.eventTime);
  const steps = new Map<string, Timeline['steps'][number]>();
  let closedAt: number | undefined;
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) steps.set(String(e.eventId), { name: scheduled.activityType?.name ?? '?', scheduledAt: at(e) });
    const done = e.activityTaskCompletedEventAttributes;
    const step = done && steps.get(String(done.scheduledEventId));
    if (step) step.completedAt = at(e);
    if (e.workflowExecutionCompletedEventAttributes || e.workflowExecutionFailedEventAttributes) closedAt = at(e);
  }
  return { startedAt: at(events[0]!), closedAt, steps: [...steps.values()] };
}

/** Milliseconds an activity took, scheduled → completed, summed over its runs (undefined if it never completed). */
export function stepMs(timeline: Timeline, name: string): number | undefined {
  const runs = timeline.steps.filter((s) => s.name === name && s.completedAt !== undefined);
  return runs.length ? runs.reduce((sum, s) => sum + (s.completedAt! - s.scheduledAt), 0) : undefined;
}

/** The time from the workflow's start to the completion of its first `name` step. */
export function msUntil(timeline: Timeline, name: string): number | undefined {
  const step = timeline.steps.find((s) => s.name === name && s.completedAt !== undefined);
  return step && step.completedAt! - timeline.startedAt;
}

/** The innermost message of a workflow failure (WorkflowFailedError → ActivityFailure → ApplicationFailure). */
export function failureText(err: unknown): string {
  let e = err as Error | undefined;
  while (e && e.cause instanceof Error) e = e.cause;
  return e?.message ?? String(err);
}
