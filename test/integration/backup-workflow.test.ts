import { Client, ScheduleOverlapPolicy, WorkflowFailedError } from '@temporalio/client';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { dataKeyFor } from '../../src/backup/read-backup';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import { keyringFor } from '../../src/crypto/keys';
import { connectTemporal } from '../../src/temporal/client';
import { dataConverterFor } from '../../src/temporal/data-converter';
import { applySchedules, backupScheduleId, KEY_ROTATION_SCHEDULE_ID, RETENTION_SCHEDULE_ID, RPO_WATCHDOG_SCHEDULE_ID } from '../../src/temporal/schedules';
import { createWorker, type LifelineWorker } from '../../src/temporal/worker';
import {
  BACKUP_WORKFLOW_TYPE,
  BackupDatabase,
  BackupId,
  BackupStatus,
  KEY_ROTATION_WORKFLOW_TYPE,
  type BackupWorkflowInput,
  type BackupWorkflowResult,
} from '../../workflows/definitions';
import { AuditLog, auditLogFile } from '../../src/audit/audit-log';
import { contentOf, schemaOf } from '../harness/compare';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { restorePartsWithPlainTools } from '../harness/plain-restore';
import { assertNotStoredByTemporal } from '../harness/secrets';
import { testServers, type TestServers } from '../harness/servers';
import { decodedPayloadsOf } from '../harness/worker';

describe('backupWorkflow against real Temporal and PostgreSQL', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let worker: LifelineWorker;
  let running: Promise<void>;
  let source: { url: string; password: string };
  let result: BackupWorkflowResult;
  let workflowId: string;

  const start = (input: BackupWorkflowInput, id = `it-backup-${Date.now()}`) =>
    client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: id,
      args: [input],
      typedSearchAttributes: [{ key: BackupDatabase, value: input.database }],
    });

  before(async () => {
    servers = await testServers();
    source = await seededDatabase(servers, 'it_source');
    const badPassword = new URL(source.url);
    badPassword.password = 'not-the-password';
    setup = await testConfig(servers, 'backup', [
      { name: 'it_source', url: source.url },
      { name: 'it_badpw', url: badPassword.toString() },
    ]);
    client = new Client({ connection: await connectTemporal(servers.temporalAddress), dataConverter: dataConverterFor(setup.config) });
    worker = await createWorker(setup.config);
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await client?.connection.close();
  });

  it('backs up a database whose stored file restores into an identical database', async () => {
    workflowId = `it-backup-full-${Date.now()}`;
    const handle = await start({ database: 'it_source' }, workflowId);
    result = (await handle.result()) as BackupWorkflowResult;
    assert.match(result.backupId, /^it_source_backup_\d{8}_\d{6}$/);

    const db = setup.config.databases[0]!;
    const manifests = await catalogFor(db).list('it_source');
    assert.deepEqual(manifests.map((m) => m.id), [result.backupId]);
    const manifest = manifests[0]!;
    assert.equal(manifest.status, 'verified');
    assert.equal(manifest.sha256, result.sha256);
    assert.ok(manifest.sizes.storedBytes < manifest.sizes.rawBytes, 'compressed');
    assert.match(manifest.object.key, /\.dump\.zst\.enc$/);
    const audit = (await new AuditLog(auditLogFile(setup.config.backupDir)).entries()).filter((e) => e.backupId === result.backupId);
    assert.deepEqual(audit.map((e) => [e.action, e.status, e.checksum, e.sizeBytes]), [
      ['backup', 'verified', result.sha256, result.storedBytes],
      ['verification', 'passed', result.sha256, result.storedBytes],
    ]);

    // The counts in the manifest are the real ones (taken in the dump's snapshot).
    const sourceContent = await contentOf(servers.cluster.adminUrl('it_source'));
    for (const t of manifest.tables.filter((t) => t.kind === 'table')) {
      assert.equal(t.rows, sourceContent[`${t.schema}.${t.name}`]?.rows, `${t.schema}.${t.name}`);
    }
    assert.ok(manifest.tables.some((t) => t.kind === 'partitioned' && t.name === 'transactions'));
    assert.equal(manifest.largeObjects, 1);

    // Decrypt + decompress the stored objects straight into PostgreSQL's own tools, into a brand-new database.
    await servers.cluster.sql('DROP DATABASE IF EXISTS it_restored');
    await servers.cluster.sql('CREATE DATABASE it_restored');
    assert.equal(manifest.format, 'parts-v1', 'new backups are in the parts format');
    const storage = localStorageFor(db);
    await restorePartsWithPlainTools(storage, manifest, await dataKeyFor(storage, manifest, keyringFor(setup.config)), servers.cluster.adminUrl('it_restored'));

    assert.equal(await schemaOf(servers.cluster.adminUrl('it_restored')), await schemaOf(servers.cluster.adminUrl('it_source')));
    assert.deepEqual(await contentOf(servers.cluster.adminUrl('it_restored')), sourceContent);
    assert.ok(Object.keys(sourceContent).includes('audit.events') && sourceContent['public.transactions_2025']!.rows > 0);

    if (process.env.LIFELINE_RECORD_HISTORY) {
      const history = await handle.fetchHistory();
      writeFileSync(path.join(__dirname, '..', 'replay', 'histories', 'backup-success.json'), historyToJSON(history));
    }
  });

  it('sets search attributes that find the run', async () => {
    const desc = await client.workflow.getHandle(workflowId).describe();
    assert.equal(desc.typedSearchAttributes.get(BackupDatabase), 'it_source');
    assert.equal(desc.typedSearchAttributes.get(BackupStatus), 'VERIFIED');
    assert.equal(desc.typedSearchAttributes.get(BackupId), result.backupId);
    let found = 0;
    for (let i = 0; i < 20 && found === 0; i++) {
      found = (await client.workflow.count(`BackupDatabase = 'it_source' AND BackupStatus = 'VERIFIED' AND WorkflowId = '${workflowId}'`)).count;
      if (!found) await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(found, 1);
  });

  it('applies a daily 03:00 UTC schedule, idempotently', async () => {
    const first = await applySchedules(client, setup.config);
    const again = await applySchedules(client, setup.config);
    const id = backupScheduleId('it_source');
    assert.equal(first.find((c) => c.scheduleId === id)?.change, 'created');
    assert.equal(again.find((c) => c.scheduleId === id)?.change, 'updated');
    const desc = await client.schedule.getHandle(id).describe();
    assert.equal(desc.spec.calendars?.length, 1);
    const [calendar] = desc.spec.calendars!;
    assert.deepEqual(calendar!.hour, [{ start: 3, end: 3, step: 1 }]);
    assert.deepEqual(calendar!.minute, [{ start: 0, end: 0, step: 1 }]);
    assert.equal(desc.spec.timezone, 'UTC');
    assert.equal(desc.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(desc.policies.catchupWindow, 6 * 3600 * 1000);
    for (const next of desc.info.nextActionTimes) assert.match(next.toISOString(), /T03:00:00\.000Z$/);
    assert.equal(desc.action.type === 'startWorkflow' && desc.action.workflowType, BACKUP_WORKFLOW_TYPE);
    for (const db of setup.config.databases) await client.schedule.getHandle(backupScheduleId(db.name)).delete();

    // Key rotation: the first day of each quarter, 04:00 UTC.
    const rotation = await client.schedule.getHandle(KEY_ROTATION_SCHEDULE_ID).describe();
    assert.equal(rotation.action.type === 'startWorkflow' && rotation.action.workflowType, KEY_ROTATION_WORKFLOW_TYPE);
    const months = rotation.info.nextActionTimes.map((t) => t.toISOString().slice(5));
    assert.ok(months.length >= 4);
    for (const next of months) assert.match(next, /^(01|04|07|10)-01T04:00:00\.000Z$/);
    await client.schedule.getHandle(KEY_ROTATION_SCHEDULE_ID).delete();

    // Retention: daily at 05:00 UTC, after the backups.
    const retention = await client.schedule.getHandle(RETENTION_SCHEDULE_ID).describe();
    for (const next of retention.info.nextActionTimes) assert.match(next.toISOString(), /T05:00:00\.000Z$/);
    await client.schedule.getHandle(RETENTION_SCHEDULE_ID).delete();
    await client.schedule.getHandle(RPO_WATCHDOG_SCHEDULE_ID).delete();
  });

  it('fails at once, without retrying, when the password is wrong, and leaves nothing behind', async () => {
    const began = Date.now();
    const handle = await start({ database: 'it_badpw' });
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      let cause: Error | undefined = err;
      while (cause?.cause instanceof Error) cause = cause.cause;
      assert.match(cause!.message, /authentication to .* failed/);
      return true;
    });
    assert.ok(Date.now() - began < 15_000, 'not retried for minutes');
    const desc = await handle.describe();
    assert.equal(desc.typedSearchAttributes.get(BackupStatus), 'FAILED');
    assert.deepEqual(await catalogFor(setup.config.databases[1]!).list('it_badpw'), []);
  });

  it('rejects bad input with a message naming the value', async () => {
    const handle = await start({ database: 'no such db!' });
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), /input\.database "no such db!" is not a database name/);
      return true;
    });
    const unknown = await start({ database: 'not_configured' });
    await assert.rejects(unknown.result(), (err: unknown) => {
      let cause: Error | undefined = err as Error;
      while (cause?.cause instanceof Error) cause = cause.cause;
      assert.match(cause!.message, /unknown database "not_configured" \(configured: it_source, it_badpw\)/);
      return true;
    });
  });

  it('never lets the database password reach Temporal (history, search attributes, SQLite)', async () => {
    assertNotStoredByTemporal(servers.temporalDbFile, source.password);
    // Payloads are encrypted by the codec: decrypt them all and look there too.
    const raw = await client.workflow.getHandle(workflowId).fetchHistory();
    const history = historyToJSON(raw);
    const payloads = (await decodedPayloadsOf(client, raw)).join('\n');
    assert.ok(payloads.includes('"database":"it_source"'), 'the decoded history holds the inputs');
    const stored = [...history.matchAll(/"data": *"([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8')).join('\n');
    assert.ok(!stored.includes('"database":"it_source"'), 'the stored history holds the inputs only encrypted');
    assert.ok(!history.includes(source.password) && !payloads.includes(source.password));
  });
});
