import { WorkflowFailedError, type Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { storageNamed } from '../../src/backup/repository';
import { Catalog } from '../../src/catalog/catalog';
import { drillReportDir } from '../../src/drill/reports';
import { rootCauseMessage } from '../../src/errors';
import { waitFor } from '../../src/infra/net';
import { drillScheduleId, drillScheduleOptions } from '../../src/temporal/schedules';
import {
  BACKUP_WORKFLOW_TYPE,
  DRILL_WORKFLOW_TYPE,
  drillProgressQuery,
  type BackupWorkflowResult,
  type DrillReport,
} from '../../workflows/definitions';
import { contentOf } from '../harness/compare';
import { s3Destination, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { webhookReceiver } from '../harness/webhook-receiver';
import { runWorker, testClient } from '../harness/worker';
import { testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

describe('disaster-recovery drills from the offsite destination', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let receiver: Awaited<ReturnType<typeof webhookReceiver>>;
  const alerts = () => receiver.posts.map((p) => p.lifeline);
  const backups: Record<string, BackupWorkflowResult> = {};
  const start = (database: string) =>
    client.workflow.start(DRILL_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `dr-${database}-${Date.now()}`,
      args: [{ database, kind: 'manual', requestedBy: 'test' }],
    });
  const scratchDatabases = async () => (await servers.cluster.sql<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'lifeline_drill_%'")).map((r) => r.datname);
  const failedReport = async (promise: Promise<unknown>): Promise<DrillReport> => {
    let report: DrillReport | undefined;
    await assert.rejects(promise, (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      report = (err.cause as { details?: unknown[] }).details?.[0] as DrillReport;
      return true;
    });
    return report!;
  };

  before(async () => {
    servers = await testServers();
    receiver = await webhookReceiver();
    const source = await seededDatabase(servers, 'dr_source');
    await servers.cluster.sql('ALTER ROLE dr_source_owner CREATEDB'); // drills restore into a scratch database
    const everyAccountHasAUser = 'SELECT NOT EXISTS (SELECT 1 FROM public.accounts a LEFT JOIN public.users u ON u.id = a.user_id WHERE u.id IS NULL)';
    setup = await testConfig(
      servers,
      'drill',
      [
        { name: 'dr_source', url: source.url, drill: { criticalTables: ['public.users', 'public.accounts'], sql: [everyAccountHasAUser], command: 'test -n "$DATABASE_URL"' } },
        // The same database under other names, each with a check that fails or takes long.
        { name: 'dr_badsql', url: source.url, drill: { sql: ['SELECT count(*) = 0 FROM public.users'] } },
        { name: 'dr_badcmd', url: source.url, drill: { command: 'echo "critical path: login broken" >&2; exit 3' } },
        { name: 'dr_slow', url: source.url, drill: { command: 'sleep 120' } },
        { name: 'dr_never', url: source.url },
      ],
      {
        destinations: [await s3Destination(servers.s3, 'offsite', 'dr-offsite')],
        env: { BACKUP_WEBHOOK_URL: receiver.url, BACKUP_NOTIFY_SUCCESS: 'false' },
      },
    );
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
    for (const database of ['dr_source', 'dr_badsql', 'dr_badcmd', 'dr_slow']) {
      backups[database] = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
        taskQueue: setup.config.temporal.taskQueue,
        workflowId: `dr-backup-${database}-${Date.now()}`,
        args: [{ database }],
      })) as BackupWorkflowResult;
    }
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
    receiver?.close();
  });

  it('passes on a seeded database, reports RTO by step and RPO, and leaves no scratch database', async () => {
    const before = await contentOf(servers.cluster.adminUrl('dr_source'));
    const handle = await start('dr_source');
    const report = (await handle.result()) as DrillReport;
    if (process.env.LIFELINE_RECORD_HISTORY) {
      writeFileSync(path.join(__dirname, '..', 'replay', 'histories', 'drill-passed.json'), historyToJSON(await handle.fetchHistory()));
    }
    assert.equal(report.passed, true, report.failure);
    assert.equal(report.backup?.backupId, backups.dr_source!.backupId);
    assert.match(report.backup!.location, /^s3:\/\/dr-offsite\//);
    assert.deepEqual(report.steps.map((s) => s.name), ['download', 'decrypt', 'restore', 'verify']);
    assert.ok(report.rto.met && report.rto.ms >= report.steps.reduce((n, s) => n + s.ms, 0));
    assert.ok(report.rpo && report.rpo.met && report.rpo.ms > 0);
    assert.deepEqual(report.checks.filter((c) => c.name.startsWith('checksum of')).map((c) => [c.name, c.ok]), [['checksum of public.users', true], ['checksum of public.accounts', true]]);
    assert.ok(report.checks.every((c) => c.ok));
    assert.match(report.scratchDatabase, /^lifeline_drill_dr_source_\d{8}_\d{6}$/);
    assert.equal(report.scratchDropped, true);
    assert.deepEqual(await scratchDatabases(), []);
    assert.deepEqual(await contentOf(servers.cluster.adminUrl('dr_source')), before, 'the source is untouched');
    const base = path.join(drillReportDir(setup.config, 'dr_source'), report.drillId);
    assert.match(readFileSync(`${base}.md`, 'utf8'), /PASSED[\s\S]*\| download \|/);
    assert.ok(existsSync(`${base}.json`));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'drills', '--json'], { cwd: root, env: { ...process.env, ...setup.env } });
    assert.deepEqual((JSON.parse(stdout) as DrillReport[]).map((r) => [r.drillId, r.passed]), [[report.drillId, true]]);
  });

  it('fails with the output of a failing SQL assertion, and of a failing critical-path command', async () => {
    const sql = await failedReport((await start('dr_badsql')).result());
    assert.match(sql.failure!, /check failed: sql: SELECT count\(\*\) = 0 FROM public\.users \(returned false\)/);
    const cmd = await failedReport((await start('dr_badcmd')).result());
    assert.match(cmd.failure!, /check failed: command: .*exit 3: critical path: login broken/);
    assert.deepEqual(await scratchDatabases(), []);
  });

  it('fails on a corrupted newest offsite backup with a critical alert naming the backup and the check', async () => {
    receiver.posts.length = 0;
    const offsite = storageNamed(setup.config, setup.config.databases[0]!, 'offsite');
    const manifest = await new Catalog(offsite).get(backups.dr_source!.backupId);
    const file = path.join(servers.s3.dataDir, 'dr-offsite', manifest.object.key);
    const bytes = readFileSync(file);
    bytes[bytes.length - 100]! ^= 0xff;
    writeFileSync(file, bytes);
    const report = await failedReport((await start('dr_source')).result());
    assert.match(report.failure!, new RegExp(`download failed: backup ${manifest.id} at s3://dr-offsite/.* failed the checksum check`));
    const critical = alerts().filter((a) => a.severity === 'critical');
    assert.equal(critical.length, 1);
    assert.equal(critical[0]!.event, 'drill.failed');
    assert.match(critical[0]!.title, new RegExp(`DR drill of dr_source FAILED \\(backup ${manifest.id}\\)`));
    assert.match(critical[0]!.text, /failed the checksum check/);
    assert.deepEqual(await scratchDatabases(), []);
  });

  it('a drill with no backup offsite fails saying so, not with the wrapping activity failure', async () => {
    const report = await failedReport((await start('dr_never')).result());
    assert.match(report.failure!, /no verified full backup of dr_never in s3:\/\/dr-offsite/);
  });

  it('drops the scratch database when a running drill is cancelled', async () => {
    const handle = await start('dr_slow');
    await waitFor('the drill to be checking (its command sleeps)', async () => (await handle.query(drillProgressQuery)).phase === 'verify', 60_000);
    assert.equal((await scratchDatabases()).length, 1, 'the scratch database exists while it runs');
    await handle.cancel();
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(rootCauseMessage(err), /cancel/i);
      return true;
    });
    assert.deepEqual(await scratchDatabases(), []);
  });

  it('schedules the DR drill on the first Sunday of each quarter and the restore test on the other months, 05:00 UTC', async () => {
    const db = setup.config.databases[0]!;
    for (const kind of ['quarterly', 'monthly'] as const) {
      await client.schedule.create(drillScheduleOptions(setup.config, db, kind)!);
      const handle = client.schedule.getHandle(drillScheduleId(db.name, kind));
      try {
        const next = (await handle.describe()).info.nextActionTimes;
        assert.ok(next.length >= 4);
        for (const t of next) {
          assert.equal(t.getUTCDay(), 0, `${t.toISOString()} is a Sunday`);
          assert.ok(t.getUTCDate() <= 7, `${t.toISOString()} is the month's first Sunday`);
          assert.equal(t.toISOString().slice(11), '05:00:00.000Z');
          assert.equal([0, 3, 6, 9].includes(t.getUTCMonth()), kind === 'quarterly', `${t.toISOString()} month`);
        }
      } finally {
        await handle.delete();
      }
    }
  });
});
