/**
 * The worker's Prometheus endpoint, scraped for real: a worker with the endpoint runs a backup (replicated
 * to a local destination); the scrape carries Lifeline's metrics with the right labels and values (as the
 * catalog says) and the Temporal SDK's runtime metrics, in text that promtool accepts. Also: a restore
 * waiting for approval is counted through Temporal's visibility, a failed backup through the audit trail,
 * a destination that lacks a copy shows lag, one broken source does not break the scrape, and the
 * endpoint serves nothing but GET /metrics. The example alert rules pass `promtool check rules` and their
 * own rule tests.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { catalogFor } from '../../src/backup/repository';
import { drillReportDir, writeDrillReport } from '../../src/drill/reports';
import { ensurePromtool } from '../../src/infra/tools';
import { waitFor } from '../../src/infra/net';
import { startMetricsEndpoint, type MetricsEndpoint } from '../../src/metrics/endpoint';
import { AlertState } from '../../src/notify/alert-state';
import { durationMs } from '../../src/reporting/history';
import { BACKUP_WORKFLOW_TYPE, RESTORE_WORKFLOW_TYPE, restoreStateQuery, type BackupWorkflowResult, type DrillReport } from '../../workflows/definitions';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, newWorkDir, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

const root = path.resolve(__dirname, '..', '..');

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format 0.0.4, parsed strictly enough to fail on anything malformed. */
function parseText(text: string): { samples: Sample[]; help: Map<string, number>; type: Map<string, number> } {
  const samples: Sample[] = [];
  const help = new Map<string, number>();
  const type = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) /.exec(line);
    if (meta) {
      const map = meta[1] === 'HELP' ? help : type;
      map.set(meta[2]!, (map.get(meta[2]!) ?? 0) + 1);
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment line: ${line}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) labels[l[1]!] = l[2]!;
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    assert.ok(m[3] === 'NaN' || !Number.isNaN(value), `not a number in: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, help, type };
}

/** Runs a program with `input` on stdin; resolves with its exit code and output. */
function runTool(command: string, args: string[], input = '', cwd = root): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
    child.stdin.end(input);
  });
}

describe('the worker\'s Prometheus endpoint', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let endpoint: MetricsEndpoint;
  let promtool: string;
  let backup: BackupWorkflowResult;
  let password: string;
  let brokenPassword: string;

  const scrape = async () => {
    const response = await fetch(endpoint.url);
    assert.equal(response.status, 200);
    const text = await response.text();
    return { text, contentType: response.headers.get('content-type') ?? '', ...parseText(text) };
  };
  const find = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  const one = (samples: Sample[], name: string, labels: Record<string, string> = {}) => {
    const found = find(samples, name, labels);
    assert.equal(found.length, 1, `one ${name}${JSON.stringify(labels)}, found ${found.length}`);
    return found[0]!.value;
  };
  const execute = <R>(type: string, input: unknown) =>
    client.workflow.execute(type, { taskQueue: setup.config.temporal.taskQueue, workflowId: `mt-${type}-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`, args: [input] }) as Promise<R>;

  before(async () => {
    servers = await testServers();
    promtool = await ensurePromtool((l) => console.log(l));
    const source = await seededDatabase(servers, 'mt_source');
    password = source.password;
    await servers.cluster.sql('ALTER ROLE mt_source_owner CREATEDB');
    await servers.cluster.sql('GRANT pg_signal_backend TO mt_source_owner');
    // A database whose password is wrong: its backups fail (PgAuthFailed, not retried).
    brokenPassword = `wrong-${Date.now()}-secret`;
    const brokenUrl = source.url.replace(`:${encodeURIComponent(password)}@`, `:${brokenPassword}@`);
    assert.notEqual(brokenUrl, source.url);
    setup = await testConfig(
      servers,
      'metrics',
      [
        { name: 'mt_source', url: source.url, production: false },
        { name: 'mt_broken', url: brokenUrl, production: false },
      ],
      { destinations: [{ name: 'vault', type: 'local', path: path.join(newWorkDir('metrics-vault'), 'vault') }] },
    );
    // Before the worker: the endpoint installs the Temporal runtime with the SDK's exporter.
    // Destinations are listed at every scrape here (the default reuses a listing for 60 s).
    endpoint = await startMetricsEndpoint(setup.config, { address: '127.0.0.1:0', destinationTtlMs: 0 });
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
    backup = await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, { database: 'mt_source' });
  });

  after(async () => {
    await stopWorker?.();
    await endpoint?.stop();
    await client?.connection.close();
  });

  it('serves the freshness, size and duration of the backup just taken, per database and destination, as the catalog says', async () => {
    const { samples, contentType } = await scrape();
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    const db = setup.config.databases.find((d) => d.name === 'mt_source')!;
    const manifest = (await catalogFor(db).latest('mt_source'))!;
    assert.equal(manifest.id, backup.backupId);

    const age = one(samples, 'lifeline_last_verified_backup_age_seconds', { database: 'mt_source', destination: 'local' });
    assert.ok(age >= 0 && age < 120, `age ${age} s`);
    assert.equal(one(samples, 'lifeline_last_verified_backup_timestamp_seconds', { database: 'mt_source', destination: 'local' }), Date.parse(manifest.startedAt) / 1000);
    assert.equal(one(samples, 'lifeline_last_backup_stored_bytes', { database: 'mt_source' }), manifest.sizes.storedBytes);
    assert.equal(one(samples, 'lifeline_last_backup_stored_bytes', { database: 'mt_source' }), backup.storedBytes);
    const duration = one(samples, 'lifeline_last_backup_duration_seconds', { database: 'mt_source' });
    assert.equal(duration, durationMs(manifest) / 1000);
    assert.ok(duration > 0 && duration < 600, `duration ${duration} s`);
    assert.equal(one(samples, 'lifeline_verified_backups', { database: 'mt_source', destination: 'local' }), 1);
    assert.equal(one(samples, 'lifeline_rpo_target_seconds', { database: 'mt_source' }), setup.config.alerts.rpoHours * 3600);

    // The replicated copy in the destination, and no lag.
    assert.deepEqual(backup.replication?.map((r) => [r.destination, r.status]), [['vault', 'replicated']]);
    const copyAge = one(samples, 'lifeline_last_verified_backup_age_seconds', { database: 'mt_source', destination: 'vault' });
    assert.ok(copyAge >= 0 && copyAge < 120, `copy age ${copyAge} s`);
    assert.equal(one(samples, 'lifeline_verified_backups', { database: 'mt_source', destination: 'vault' }), 1);
    assert.equal(one(samples, 'lifeline_replication_lag_seconds', { database: 'mt_source', destination: 'vault' }), 0);

    // The database never backed up: counted, no age (the NoVerifiedBackup rule sees it), no failure yet.
    assert.equal(one(samples, 'lifeline_verified_backups', { database: 'mt_broken', destination: 'local' }), 0);
    assert.equal(find(samples, 'lifeline_last_verified_backup_age_seconds', { database: 'mt_broken' }).length, 0);
    for (const database of ['mt_source', 'mt_broken']) {
      for (const kind of ['backup', 'drill']) assert.equal(one(samples, 'lifeline_failures_total', { database, kind }), 0, `${database} ${kind}`);
      assert.equal(one(samples, 'lifeline_restores_waiting_approval', { database }), 0);
    }
    // Every source answered; the SDK's part was fetched.
    for (const s of find(samples, 'lifeline_collector_up')) assert.equal(s.value, 1, JSON.stringify(s.labels));
    assert.deepEqual(
      [...new Set(find(samples, 'lifeline_collector_up').map((s) => s.labels.collector))].sort(),
      ['alerts', 'audit', 'catalog', 'destination', 'drills', 'temporal'],
    );
    assert.equal(one(samples, 'lifeline_sdk_metrics_up'), 1);
  });

  it('appends the Temporal SDK runtime metrics, one HELP and TYPE per family, and promtool accepts the text', async () => {
    const { text, samples, help, type } = await scrape();
    const sdk = samples.filter((s) => s.name.startsWith('temporal_'));
    assert.ok(sdk.length > 0, 'temporal_* samples present');
    // What a worker that ran a backup has recorded: workflow and activity tasks, and its task queue in the labels.
    assert.ok(sdk.some((s) => s.name.startsWith('temporal_workflow_task') || s.name.startsWith('temporal_activity')), `SDK families: ${[...new Set(sdk.map((s) => s.name))].slice(0, 20).join(', ')}`);
    assert.ok(sdk.some((s) => s.labels.task_queue === setup.config.temporal.taskQueue), 'SDK samples carry the task queue');
    // Node's process metrics too (prom-client defaults): the worker's RSS.
    assert.ok(one(samples, 'process_resident_memory_bytes') > 10 << 20);
    for (const [name, n] of [...help, ...type]) assert.equal(n, 1, `${name} described once`);

    const check = await runTool(promtool, ['check', 'metrics'], text);
    assert.equal(check.code, 0, `promtool check metrics:\n${check.output}`);
  });

  it('puts only database, destination and kind names in labels: no URL, password or path', async () => {
    const { text, samples } = await scrape();
    for (const secret of [password, encodeURIComponent(password), brokenPassword, 'postgresql://', setup.dir, servers.cluster.dir]) {
      assert.ok(!text.includes(secret), `the scrape holds ${secret}`);
    }
    const allowed = new Set(['database', 'destination', 'kind', 'severity', 'collector']);
    for (const s of samples.filter((x) => x.name.startsWith('lifeline_'))) {
      for (const [label, value] of Object.entries(s.labels)) {
        assert.ok(allowed.has(label), `${s.name} has label ${label}`);
        if (label === 'database') assert.ok(['mt_source', 'mt_broken'].includes(value), `${s.name} database=${value}`);
        if (label === 'destination') assert.ok(['local', 'vault'].includes(value), `${s.name} destination=${value}`);
      }
    }
  });

  it('counts a restore waiting for approval (Temporal visibility), and stops counting it once it ended', async () => {
    const handle: WorkflowHandle = await client.workflow.start(RESTORE_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `mt-restore-${Date.now()}`,
      args: [{ database: 'mt_source', requestedBy: 'test', approvalTimeout: '10m' }],
    });
    try {
      await waitFor('the restore to wait for approval', async () => (await handle.query(restoreStateQuery)) === 'WAITING_APPROVAL', 60_000);
      await waitFor('the scrape to count it', async () => one((await scrape()).samples, 'lifeline_restores_waiting_approval', { database: 'mt_source' }) === 1, 30_000);
      assert.equal(one((await scrape()).samples, 'lifeline_restores_waiting_approval', { database: 'mt_broken' }), 0);
    } finally {
      await handle.terminate('metrics test done');
    }
    // Terminated while waiting: its RestoreState stays WAITING_APPROVAL, but it no longer runs.
    await waitFor('the scrape to stop counting it', async () => one((await scrape()).samples, 'lifeline_restores_waiting_approval', { database: 'mt_source' }) === 0, 30_000);
  });

  it('counts a failed backup by kind from the audit trail, and a worker started afterwards reports the same', async () => {
    await assert.rejects(execute(BACKUP_WORKFLOW_TYPE, { database: 'mt_broken' }));
    const { samples } = await scrape();
    assert.equal(one(samples, 'lifeline_failures_total', { database: 'mt_broken', kind: 'backup' }), 1);
    assert.equal(one(samples, 'lifeline_failures_total', { database: 'mt_source', kind: 'backup' }), 0);
    // Another endpoint (a restarted worker) reads the same trail: the count does not start again at 0.
    const second = await startMetricsEndpoint(setup.config, { address: '127.0.0.1:0' });
    try {
      const text = await (await fetch(second.url)).text();
      assert.equal(one(parseText(text).samples, 'lifeline_failures_total', { database: 'mt_broken', kind: 'backup' }), 1);
    } finally {
      await second.stop();
    }
  });

  it('reports the newest drill, open alerts, and the lag of a destination that lacks the newest backup', async () => {
    const db = setup.config.databases.find((d) => d.name === 'mt_source')!;
    const base = { database: 'mt_source', kind: 'quarterly', requestedBy: 'test', scratchDatabase: 'mt_scratch', steps: [], checks: [], scratchDropped: true };
    const older: DrillReport = { ...base, drillId: 'mt-drill-1', startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:05:00.000Z', passed: true, rto: { ms: 300_000, targetMs: 3_600_000, met: true }, rpo: { ms: 7_200_000, targetMs: 86_400_000, met: true } };
    const newer: DrillReport = { ...base, drillId: 'mt-drill-2', startedAt: '2026-04-01T00:00:00.000Z', finishedAt: '2026-04-01T00:02:30.000Z', passed: false, failure: 'check failed', rto: { ms: 150_000, targetMs: 3_600_000, met: true }, rpo: { ms: 3_600_000, targetMs: 86_400_000, met: true } };
    await writeDrillReport(setup.config, older);
    await writeDrillReport(setup.config, newer);
    const state = new AlertState(setup.config.backupDir);
    await state.open('rpo:mt_broken', 'critical', 'RPO breached for mt_broken');
    await state.open(`space:${db.backupDir}`, 'warning', 'low on space');
    // The destination loses its copy: it lacks a backup verified at manifest.verification.verifiedAt.
    const manifest = (await catalogFor(db).latest('mt_source'))!;
    const vault = setup.config.destinations[0]!;
    assert.equal(vault.kind, 'local');
    rmSync(path.join(vault.kind === 'local' ? vault.path : '', 'mt_source', `${manifest.id}.manifest.json`));

    const started = Date.now();
    const { samples, text } = await scrape();
    assert.equal(one(samples, 'lifeline_drill_last_passed', { database: 'mt_source' }), 0);
    assert.equal(one(samples, 'lifeline_drill_last_rto_seconds', { database: 'mt_source' }), 150);
    assert.equal(one(samples, 'lifeline_drill_last_rpo_seconds', { database: 'mt_source' }), 3600);
    assert.equal(one(samples, 'lifeline_drill_rto_target_seconds', { database: 'mt_source' }), 3600);
    assert.equal(one(samples, 'lifeline_drill_last_timestamp_seconds', { database: 'mt_source' }), Date.parse(newer.finishedAt) / 1000);
    assert.equal(find(samples, 'lifeline_drill_last_passed', { database: 'mt_broken' }).length, 0);
    assert.equal(one(samples, 'lifeline_alerts_open', { kind: 'rpo', severity: 'critical' }), 1);
    assert.equal(one(samples, 'lifeline_alerts_open', { kind: 'space', severity: 'warning' }), 1);
    assert.ok(!text.includes(db.backupDir), 'an alert key\'s path is not a label');
    const lag = one(samples, 'lifeline_replication_lag_seconds', { database: 'mt_source', destination: 'vault' });
    const expected = (started - Date.parse(manifest.verification.verifiedAt)) / 1000;
    assert.ok(lag > 0 && Math.abs(lag - expected) < 5, `lag ${lag} s, expected about ${expected} s`);
    assert.equal(one(samples, 'lifeline_verified_backups', { database: 'mt_source', destination: 'vault' }), 0);
    assert.equal(find(samples, 'lifeline_last_verified_backup_age_seconds', { destination: 'vault' }).length, 0);
  });

  it('leaves a broken source out of the scrape and says so, instead of failing the whole scrape', async () => {
    const db = setup.config.databases.find((d) => d.name === 'mt_source')!;
    const bad = path.join(drillReportDir(setup.config, 'mt_source'), 'zz-damaged.json');
    mkdirSync(path.dirname(bad), { recursive: true });
    writeFileSync(bad, '{ not json');
    try {
      const { samples } = await scrape();
      assert.equal(one(samples, 'lifeline_collector_up', { collector: 'drills' }), 0);
      assert.ok(one(samples, 'lifeline_scrape_errors_total', { collector: 'drills' }) >= 1);
      assert.equal(find(samples, 'lifeline_drill_last_passed').length, 0, 'no stale drill values');
      // Everything else is there.
      assert.equal(one(samples, 'lifeline_collector_up', { collector: 'catalog', database: 'mt_source' }), 1);
      assert.equal(one(samples, 'lifeline_last_backup_stored_bytes', { database: 'mt_source' }), (await catalogFor(db).latest('mt_source'))!.sizes.storedBytes);
      assert.ok(samples.some((s) => s.name.startsWith('temporal_')));
    } finally {
      rmSync(bad);
    }
    assert.equal(one((await scrape()).samples, 'lifeline_collector_up', { collector: 'drills' }), 1);
  });

  it('answers in time when a destination never answers: that destination is left out, the rest is served', async () => {
    // A TCP server that accepts and never writes a byte, as an S3 endpoint behind a dead load balancer.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => undefined).on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    process.env.MT_SILENT_KEY = 'silent-key';
    process.env.MT_SILENT_SECRET = 'silent-secret-value';
    const db = setup.config.databases.find((d) => d.name === 'mt_source')!;
    const hung = await testConfig(servers, 'metrics-hung', [{ name: 'mt_source', url: db.url, production: false }], {
      destinations: [{ name: 'stuck', type: 's3', bucket: 'stuck', endpoint: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, accessKeyIdEnv: 'MT_SILENT_KEY', secretAccessKeyEnv: 'MT_SILENT_SECRET' }],
    });
    const second = await startMetricsEndpoint(hung.config, { address: '127.0.0.1:0', collectorTimeoutMs: 1500 });
    try {
      const started = Date.now();
      const response = await fetch(second.url);
      const elapsed = Date.now() - started;
      assert.equal(response.status, 200);
      const { samples } = parseText(await response.text());
      assert.ok(elapsed < 5000, `scrape took ${elapsed} ms`);
      assert.equal(one(samples, 'lifeline_collector_up', { collector: 'destination', database: 'mt_source', destination: 'stuck' }), 0);
      assert.equal(one(samples, 'lifeline_scrape_errors_total', { collector: 'destination' }), 1);
      assert.equal(find(samples, 'lifeline_replication_lag_seconds', { destination: 'stuck' }).length, 0);
      assert.equal(one(samples, 'lifeline_collector_up', { collector: 'catalog', database: 'mt_source' }), 1);
      assert.equal(one(samples, 'lifeline_verified_backups', { database: 'mt_source', destination: 'local' }), 0, 'its own (empty) repository');
      assert.ok(!samples.some((x) => Object.values(x.labels).some((v) => v.includes('silent-secret-value'))));
    } finally {
      await second.stop();
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('serves GET /metrics only', async () => {
    const base = new URL(endpoint.url);
    for (const p of ['/', '/metric', '/metrics/', '/metrics/../etc/passwd', '/debug/pprof']) {
      const response = await fetch(new URL(p, base));
      assert.equal(response.status, 404, p);
      assert.ok(!(await response.text()).includes('lifeline_'), `${p} serves no metrics`);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const response = await fetch(endpoint.url, { method, body: method === 'DELETE' ? undefined : 'x' });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get('allow'), 'GET');
    }
    assert.equal((await fetch(`${endpoint.url}?name[]=x`)).status, 200);
  });

  it('ships alert rules that promtool checks and that fire on these metrics (deploy/prometheus)', async () => {
    const check = await runTool(promtool, ['check', 'rules', path.join('deploy', 'prometheus', 'alerts.yml')]);
    assert.equal(check.code, 0, check.output);
    assert.match(check.output, /SUCCESS: \d+ rules found/);
    const tests = await runTool(promtool, ['test', 'rules', 'alerts.test.yml'], '', path.join(root, 'deploy', 'prometheus'));
    assert.equal(tests.code, 0, tests.output);
    // The rules use the names the endpoint serves.
    const { samples } = await scrape();
    const served = new Set(samples.map((s) => s.name));
    const rules = readFileSync(path.join(root, 'deploy', 'prometheus', 'alerts.yml'), 'utf8');
    for (const name of new Set(rules.match(/lifeline_[a-z_]+/g) ?? [])) {
      assert.ok(served.has(name) || name === 'lifeline_drill_last_passed' || name === 'lifeline_drill_last_timestamp_seconds', `alerts.yml uses ${name}, which the endpoint does not serve`);
    }
  });
});
