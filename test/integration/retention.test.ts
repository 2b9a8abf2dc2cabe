import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { auditLogOf } from '../../src/audit/audit-log';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import type { Manifest } from '../../src/catalog/manifest';
import { manifestKey } from '../../src/catalog/naming';
import { waitFor } from '../../src/infra/net';
import { setLegalHold } from '../../src/retention/apply';
import {
  approveUpdate,
  BACKUP_WORKFLOW_TYPE,
  RETENTION_WORKFLOW_TYPE,
  retentionStateQuery,
  type BackupWorkflowResult,
  type RetentionWorkflowInput,
  type RetentionWorkflowResult,
} from '../../workflows/definitions';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { runWorker, testClient } from '../harness/worker';
import { testServers, type TestServers } from '../harness/servers';
import { catalogCopy } from '../harness/catalog-copies';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const DAY = 86_400_000;

describe('retentionWorkflow over a synthetic history', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let history: string[];
  const folder = () => path.join(setup.config.databases[0]!.backupDir, 'rt_source');
  const ids = async () => (await catalogFor(setup.config.databases[0]!).list('rt_source')).map((m) => m.id);
  const start = (input: RetentionWorkflowInput) =>
    client.workflow.start(RETENTION_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `rt-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`,
      args: [{ requestedBy: 'test', ...input }],
    });

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'rt_source', { users: 10, transactions: 100 });
    setup = await testConfig(servers, 'retention', [{ name: 'rt_source', url: source.url, retentionDays: 30 }]);
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
    // One real backup, then 40 more catalogued at chosen dates (every 3 days back to 120 days ago),
    // each a copy of it under its own id: retention reads the time from the manifest only.
    const real = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `rt-backup-${Date.now()}`,
      args: [{ database: 'rt_source' }],
    })) as BackupWorkflowResult;
    const storage = localStorageFor(setup.config.databases[0]!);
    const manifest = JSON.parse(readFileSync(storage.describe(manifestKey('rt_source', real.backupId)), 'utf8')) as Manifest;
    history = [real.backupId];
    for (let i = 1; i <= 40; i++) {
      // The file's own time says "now": only the (authenticated) manifest knows the backup's age.
      const copy = await catalogCopy(setup.config, setup.config.databases[0]!, manifest, new Date(Date.now() - i * 3 * DAY));
      history.push(copy.id);
    }
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('a dry run plans and changes nothing', async () => {
    const files = readdirSync(folder()).sort();
    const result = (await (await start({ dryRun: true })).result()) as RetentionWorkflowResult;
    assert.equal(result.outcome, 'dry-run');
    const [plan] = result.plans;
    // Younger than 30 days: the real one and those 3..27 days old (9); the rest is older.
    assert.equal(plan!.plan.keep.length, 10);
    assert.equal(plan!.plan.delete.length, 31);
    assert.ok(plan!.needsApproval, '31 of 41 is more than half');
    assert.deepEqual(readdirSync(folder()).sort(), files);

    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'cleanup', '--dry-run'], {
      cwd: root,
      env: { ...process.env, ...setup.env },
    });
    assert.match(stdout, /rt_source in local: 31 of 41 to delete \(keep-for-days 30\), needs approval/);
    assert.match(stdout, /Dry run: nothing was deleted/);
    assert.deepEqual(readdirSync(folder()).sort(), files);
  });

  it('waits for approval when a plan is over the threshold, then deletes exactly the plan and records each deletion', async () => {
    const held = history[35]!;
    await setLegalHold(setup.config, 'rt_source', held, { by: 'legal', reason: 'litigation 2026-17' });
    const handle = await start({});
    await waitFor('the cleanup to wait for approval', async () => (await handle.query(retentionStateQuery)) === 'WAITING_APPROVAL', 60_000);
    assert.equal((await ids()).length, 41, 'nothing deleted while waiting');
    assert.equal(await handle.executeUpdate(approveUpdate, { args: [{ by: 'carol' }] }), 'approved by carol');
    const result = (await handle.result()) as RetentionWorkflowResult;
    if (process.env.LIFELINE_RECORD_HISTORY) {
      writeFileSync(path.join(__dirname, '..', 'replay', 'histories', 'retention-approved.json'), historyToJSON(await handle.fetchHistory()));
    }
    assert.equal(result.outcome, 'applied');
    assert.equal(result.deleted.length, 30);
    assert.ok(result.deleted.every((d) => d.ok));
    const left = await ids();
    assert.equal(left.length, 11);
    assert.ok(left.includes(history[0]!), 'the newest verified backup stays');
    assert.ok(left.includes(held), 'the held backup stays');
    for (const d of result.deleted) {
      assert.ok(!existsSync(path.join(folder(), `${d.backupId}.dump.zst.enc`)), `${d.backupId} data removed`);
      assert.match(d.rule, /older than 30 days/);
    }
    const audit = auditLogOf(setup.config);
    const deletions = (await audit.entries()).filter((e) => e.action === 'deletion');
    assert.deepEqual(deletions.map((e) => e.backupId).sort(), result.deleted.map((d) => d.backupId).sort());
    assert.ok(deletions.every((e) => e.actor === 'carol' && typeof e.details?.rule === 'string'));
    assert.equal((await audit.verify()).ok, true);
  });

  it('keeps the newest verified backups under a policy of zero days', async () => {
    const handle = await start({ olderThanDays: 0 });
    await waitFor('approval', async () => (await handle.query(retentionStateQuery)) === 'WAITING_APPROVAL', 60_000);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'carol' }] });
    const result = (await handle.result()) as RetentionWorkflowResult;
    const left = await ids();
    // Minimum 3 newest (the newest among them), and the held one.
    assert.deepEqual(left.sort(), [history[0]!, history[1]!, history[2]!, history[35]!].sort());
    assert.equal(result.deleted.length, 7);
  });
});
