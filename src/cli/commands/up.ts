import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEMO_CLUSTER_DIR, DEMO_HOME, DEMO_PASSWORD_FILE } from '../../config/demo';
import { CONFIG_FILE_NAMES, loadConfig } from '../../config/load';
import { createKeyFile } from '../../crypto/keys/local-key-file';
import { PrivateCluster } from '../../infra/postgres-cluster';
import { DEMO_SIZE, seedMoneyFlowAt } from '../../infra/moneyflow-seed';
import { isListening } from '../../infra/net';
import { startTemporalDevServer } from '../../infra/temporal-dev-server';
import { ensureSystemTools, ensureTemporalCli } from '../../infra/tools';
import { LifelineError } from '../../errors';
import { logger } from '../../logger';
import { createClient } from '../../temporal/client';
import { applySchedules } from '../../temporal/schedules';
import { ensureSearchAttributes } from '../../temporal/search-attributes';
import { createWorker } from '../../temporal/worker';
import { startMetricsEndpoint } from '../../metrics/endpoint';
import type { Command } from '../command';
import { describeResult, startBackup, waitForBackup } from './backup';
import { codecServerForUp } from './codec-server';

const say = (line: string) => process.stdout.write(line + '\n');

/** Where `npm start` serves the worker's metrics when LIFELINE_METRICS_ADDRESS is unset (the OpenTelemetry/Prometheus exporter port). */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9464';

/** The demo database: a private cluster under .lifeline/, seeded once, with a password-protected role. */
async function startDemoDatabase(): Promise<{ url: string; cluster: PrivateCluster }> {
  const cluster = await new PrivateCluster(path.resolve(DEMO_CLUSTER_DIR)).start();
  const secretFile = path.resolve(DEMO_PASSWORD_FILE);
  if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const fresh = (await cluster.sql(`SELECT 1 FROM pg_database WHERE datname = 'moneyflow'`)).length === 0;
  const url = await cluster.createDatabase('moneyflow', 'moneyflow', readFileSync(secretFile, 'utf8').trim());
  if (fresh) {
    // What a restoring role needs (README, "Restores"): make and rename databases, end sessions,
    // and replace tables without foreign-key cascades.
    await cluster.sql('ALTER ROLE moneyflow CREATEDB');
    await cluster.sql('GRANT pg_signal_backend TO moneyflow');
    await cluster.sql('GRANT SET ON PARAMETER session_replication_role TO moneyflow');
    await seedMoneyFlowAt(url, DEMO_SIZE);
    say(`Seeded the demo MoneyFlow database (${DEMO_SIZE.users} users, ${DEMO_SIZE.transactions} transactions).`);
  }
  return { url, cluster };
}

export const upCommand: Command = {
  name: 'up',
  summary: 'set up and run everything locally: Temporal, a demo database, a key, a worker, the schedules, one backup',
  usage: 'lifeline up',
  details: `  Uses TEMPORAL_ADDRESS and DATABASE_URL (or lifeline.config.*) when set; otherwise starts a local
  Temporal dev server (Web UI on :8233, history in .lifeline/temporal.db) and a demo PostgreSQL.
  Stays up until Ctrl-C, which stops everything it started.`,
  options: {},
  async run() {
    const home = path.resolve(DEMO_HOME);
    mkdirSync(home, { recursive: true, mode: 0o755 });
    const stops: Array<() => Promise<void>> = [];
    const stopAll = async () => {
      for (const stop of stops.reverse()) await stop().catch((err) => logger.warn({ err }, 'stop failed'));
    };
    try {
      await ensureSystemTools(say);

      const hasConfigFile = process.env.LIFELINE_CONFIG || CONFIG_FILE_NAMES.some((f) => existsSync(f));
      if (!process.env.DATABASE_URL && !hasConfigFile) {
        const demo = await startDemoDatabase();
        stops.push(() => demo.cluster.stop());
        process.env.DATABASE_URL = demo.url; // stays in this process: the worker resolves it, Temporal never sees it
        say(`Demo database: postgresql://moneyflow@127.0.0.1:${demo.cluster.port}/moneyflow (password in .lifeline/demo-db-password)`);
      }

      // The codec server before Temporal's, so that the Web UI starts pointed at it: payloads are encrypted,
      // and the UI shows them decoded only through it. Its codec reads its keys on the first payload, not now.
      const codecConfig = loadConfig();
      const codec = await codecServerForUp(codecConfig);
      if (codec.stop) stops.push(codec.stop);
      say(
        `${codec.started ? 'Codec server on' : 'Using the codec server already listening on'} ${codec.url} (the Web UI and \`temporal workflow show --codec-endpoint\` decode payloads with it)` +
          (codecConfig.codecServer.token ? '; LIFELINE_CODEC_TOKEN is set, which the Web UI cannot send: unset it for the UI to decode (README, "Reading payloads")' : ''),
      );

      if (!process.env.TEMPORAL_ADDRESS) {
        if (await isListening('127.0.0.1', 7233)) {
          say(`Using the Temporal server already listening on 127.0.0.1:7233 (its Web UI decodes payloads only if it was started with --ui-codec-endpoint ${codec.url}).`);
        } else {
          const cliPath = await ensureTemporalCli(say);
          const server = await startTemporalDevServer({
            cliPath,
            dbFile: path.join(home, 'temporal.db'),
            port: 7233,
            uiPort: 8233,
            uiCodecEndpoint: codec.url,
            logFile: path.join(home, 'logs', 'temporal.log'),
          });
          stops.push(server.stop);
          say(`Temporal dev server on ${server.address}, Web UI ${server.uiUrl}`);
        }
        process.env.TEMPORAL_ADDRESS = '127.0.0.1:7233';
      }

      const cfg = loadConfig();
      if (!process.env.BACKUP_ENCRYPTION_KEY && !existsSync(cfg.encryption.keyFile)) {
        const keyId = await createKeyFile(cfg.encryption.keyFile);
        say(`Generated a master key ${keyId} at ${cfg.encryption.keyFile} (mode 0600). Keep a copy elsewhere.`);
      }

      const client = await createClient(cfg);
      await ensureSearchAttributes(client.connection, cfg.temporal.namespace);
      // Prometheus metrics on 127.0.0.1:9464 unless LIFELINE_METRICS_ADDRESS (or metricsAddress) says where;
      // started before the worker connects (it installs the Temporal runtime with the SDK's exporter).
      const metrics = await startMetricsEndpoint(cfg, { address: cfg.metrics.address ?? DEFAULT_METRICS_ADDRESS }).catch((err: Error) => {
        if (cfg.metrics.address) throw err;
        say(`Metrics not served: ${err.message} (set LIFELINE_METRICS_ADDRESS to another host:port).`);
        return undefined;
      });
      if (metrics) {
        stops.push(metrics.stop);
        say(`Metrics for Prometheus: ${metrics.url}`);
      }
      const worker = await createWorker(cfg);
      // The worker stops itself on SIGINT/SIGTERM (the Temporal runtime's signal handling); whatever
      // we are waiting for then, stop waiting and shut down what we started.
      const running = worker.run();
      const stopped = running.then(() => {
        throw new LifelineError('Stopped', 'stopped before the first backup finished (it resumes when a worker runs again)');
      });
      say(`Worker polling task queues "${cfg.temporal.taskQueue}" (workflows, short steps) and "${cfg.temporal.longTaskQueue}" (long steps) for ${cfg.databases.map((d) => d.name).join(', ')}.`);
      for (const change of await applySchedules(client, cfg)) say(`Schedule ${change.scheduleId}: ${change.change}`);

      for (const db of cfg.databases) {
        const started = await startBackup(client, cfg, db.name, 'full');
        say(`\nBacking up ${db.name} now: ${started.link}`);
        const result = await Promise.race([waitForBackup(started, { live: process.stderr.isTTY }), stopped]);
        say(describeResult(result));
      }
      say(
        'Next:\n' +
          '  npx lifeline list                 the catalog\n' +
          '  npx lifeline verify --all         read every backup back\n' +
          '  npx lifeline status               RPO and schedules\n' +
          `  Web UI                            ${process.env.TEMPORAL_UI_URL ?? 'http://localhost:8233'} (filter: BackupDatabase = "${cfg.databases[0]?.name}")\n` +
          `  temporal workflow show -w <id> --codec-endpoint ${codec.url}   a run's history, decoded\n` +
          '\nLifeline is running. Press Ctrl-C to stop everything it started.',
      );
      await running;
      return 0;
    } finally {
      await stopAll();
    }
  },
};
