import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { auditLogFile } from '../../src/audit/audit-log';
import { localStorageFor } from '../../src/backup/repository';
import type { Manifest } from '../../src/catalog/manifest';
import { manifestKey } from '../../src/catalog/naming';
import {
  BACKUP_WORKFLOW_TYPE,
  RESTORE_WORKFLOW_TYPE,
  RETENTION_WORKFLOW_TYPE,
  type BackupWorkflowResult,
  type RestoreWorkflowResult,
  type RetentionWorkflowResult,
} from '../../workflows/definitions';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { runWorker, testClient } from '../harness/worker';
import { catalogCopy } from '../harness/catalog-copies';
import { testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const DAY = 86_400_000;

describe('status, stats, the monthly report and the audit check', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let backup: BackupWorkflowResult;
  let failedId: string;
  let deletedIds: string[];
  const month = new Date().toISOString().slice(0, 7);
  const execute = <R>(type: string, input: unknown) =>
    client.workflow.execute(type, { taskQueue: setup.config.temporal.taskQueue, workflowId: `rp-${type}-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`, args: [input] }) as Promise<R>;
  const cli = (args: string[]) =>
    run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root, env: { ...process.env, ...setup.env } }).catch(
      (err: { code: number; stdout: string; stderr: string }) => ({ ...err, failed: true }),
    );

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'rp_source', { users: 10, transactions: 200 });
    await servers.cluster.sql('ALTER ROLE rp_source_owner CREATEDB');
    await servers.cluster.sql('GRANT pg_signal_backend TO rp_source_owner');
    const bad = new URL(source.url);
    bad.password = 'wrong';
    setup = await testConfig(servers, 'reporting', [
      // Forced restores are opt-in: a test database that allows them.
      { name: 'rp_source', url: source.url, production: false, allowForceRestore: true },
      { name: 'rp_broken', url: bad.toString() },
    ]);
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);

    backup = await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, { database: 'rp_source' });
    await assert.rejects(execute(BACKUP_WORKFLOW_TYPE, { database: 'rp_broken' }));
    const failed = readFileSync(auditLogFile(setup.config.backupDir), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.status === 'failed');
    failedId = failed.backupId;
    const restored = await execute<RestoreWorkflowResult>(RESTORE_WORKFLOW_TYPE, { database: 'rp_source', backup: backup.backupId, force: true, requestedBy: 'dave', reason: 'report test' });
    assert.equal(restored.outcome, 'restored');
    // Three backups from 40 days ago; the cleanup removes two (the newest three of all stay: the minimum).
    const storage = localStorageFor(setup.config.databases[0]!);
    const manifest = JSON.parse(readFileSync(storage.describe(manifestKey('rp_source', backup.backupId)), 'utf8')) as Manifest;
    deletedIds = [];
    for (const hours of [0, 1, 2]) {
      // Authentic copies (a hand-edited manifest is not trusted, and retention leaves it alone).
      const { id } = await catalogCopy(setup.config, setup.config.databases[0]!, manifest, new Date(Date.now() - 40 * DAY - hours * 3_600_000));
      if (hours > 0) deletedIds.push(id);
    }
    const cleanup = await execute<RetentionWorkflowResult>(RETENTION_WORKFLOW_TYPE, { databases: ['rp_source'], requestedBy: 'erin' });
    assert.deepEqual(cleanup.deleted.map((d) => d.backupId).sort(), deletedIds.sort());
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('status shows the last verified backup, the RPO and open alerts; stats counts and rates', async () => {
    const status = JSON.parse((await cli(['status', '--json'])).stdout) as Array<{ database: string; rpo: { ok: boolean }; lastVerifiedBackup?: { id: string }; lastRun?: { status: string } }>;
    const source = status.find((s) => s.database === 'rp_source')!;
    assert.equal(source.lastVerifiedBackup?.id, backup.backupId);
    assert.equal(source.rpo.ok, true);
    const broken = status.find((s) => s.database === 'rp_broken')!;
    assert.equal(broken.rpo.ok, false);
    assert.equal(broken.lastRun?.status, 'FAILED');

    const stats = JSON.parse((await cli(['stats', '--days', '7', '--json'])).stdout) as { verified: number; failed: number; successRate: number; compressionRatio: number; perDay: unknown[] };
    assert.equal(stats.perDay.length, 7);
    assert.equal(stats.verified, 1, 'the backup (pre-restore snapshots are not counted)');
    assert.equal(stats.failed, 1);
    assert.equal(stats.successRate, 0.5);
    assert.ok(stats.compressionRatio > 1);
    const text = (await cli(['stats'])).stdout;
    assert.match(text, /1 verified, 1 failed \(50\.0% success\)/);
    assert.match(text, /^size +[ ▁▂▃▄▅▆▇█]{7}$/m);
  });

  it("the month's report lists the failed backup, the restore, the approval and the deletions with their rule", async () => {
    const md = (await cli(['report', '--month', month])).stdout;
    assert.match(md, /\*\*Audit trail:\*\* intact/);
    assert.match(md, new RegExp(`## Failed backups[\\s\\S]*${failedId}`));
    assert.match(md, new RegExp(`## Restores[\\s\\S]*\\| dave \\| rp_source \\| ${backup.backupId} \\| restored`));
    assert.match(md, new RegExp(`## Approvals and cancellations[\\s\\S]*\\| dave \\| rp_source \\| ${backup.backupId} \\| forced`));
    for (const id of deletedIds) assert.match(md, new RegExp(`## Deletions[\\s\\S]*\\| erin \\| rp_source \\| ${id} \\| deleted \\| .*older than 30 days`));
    assert.match(md, /## RPO achieved[\s\S]*\| rp_broken \| [\d.]+ \| NO \|/);
    assert.match(md, /## RTO achieved \(restores\)[\s\S]*\| yes \|/);
    const html = (await cli(['report', '--month', month, '--format', 'html'])).stdout;
    assert.match(html, /^<!doctype html>/);
    assert.equal((html.match(/<svg /g) ?? []).length, 3);
    assert.match(html, new RegExp(`<td>${failedId}</td>`));
  });

  it('audit verify names the line that was edited, and the report says the chain is broken', async () => {
    assert.equal((await cli(['audit', 'verify'])).stdout.startsWith('OK:'), true);
    const file = auditLogFile(setup.config.backupDir);
    const lines = readFileSync(file, 'utf8').split('\n');
    const target = lines.findIndex((l) => l.includes('"action":"deletion"'));
    lines[target] = lines[target]!.replace('"actor":"erin"', '"actor":"mallory"');
    writeFileSync(file, lines.join('\n'));
    const result = await cli(['audit', 'verify']);
    assert.equal((result as { code?: number }).code, 1);
    assert.match(result.stdout, new RegExp(`BROKEN: .* line ${target + 1}: its content does not match its hash`));
    const md = await cli(['report', '--month', month]);
    assert.match(md.stdout, new RegExp(`\\*\\*Audit trail:\\*\\* BROKEN at line ${target + 1}`));
  });
});
