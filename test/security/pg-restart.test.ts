/**
 * PostgreSQL restarted in the middle of a dump (a failover, an operator's restart): the backup
 * must still end verified, by retrying the dump, with exactly one catalogued backup and nothing
 * left of the interrupted attempt. A cluster of its own, so other test files never see it go.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { localStorageFor } from '../../src/backup/repository';
import { Catalog } from '../../src/catalog/catalog';
import { storedObjects } from '../../src/parts/parts-of';
import { seedMoneyFlowAt } from '../../src/infra/moneyflow-seed';
import { freePort } from '../../src/infra/net';
import { PrivateCluster } from '../../src/infra/postgres-cluster';
import { BACKUP_WORKFLOW_TYPE, type BackupWorkflowResult } from '../../workflows/definitions';
import { testConfig, type TestSetup } from '../harness/fixtures';
import { runWorker, testClient } from '../harness/worker';
import { newWorkDir, testServers, type TestServers } from '../harness/servers';

describe('PostgreSQL restarted in the middle of a dump', () => {
  let servers: TestServers;
  let cluster: PrivateCluster;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: (() => Promise<void>) | undefined;

  before(async () => {
    servers = await testServers();
    // A fixed port: a restarted cluster must come back where the configuration points.
    cluster = await new PrivateCluster(path.join(newWorkDir('pg-restart'), 'postgres'), await freePort()).start();
    const url = await cluster.createDatabase('pr_source', 'pr_source_owner', `pw-${randomBytes(8).toString('hex')}`);
    await seedMoneyFlowAt(url, { users: 20, transactions: 300 });
    // About 120 MB of rows, so that pg_dump's COPY runs long enough to be interrupted.
    await cluster.sql(
      `CREATE TABLE public.documents (id int PRIMARY KEY, body text);
       INSERT INTO public.documents SELECT g, repeat(md5(g::text), 16) FROM generate_series(1, 240000) g;
       ALTER TABLE public.documents OWNER TO pr_source_owner;`,
      'pr_source',
    );
    setup = await testConfig(servers, 'pg-restart', [{ name: 'pr_source', url }]);
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
    await cluster?.stop();
  });

  it('ends verified by retrying the dump: one catalogued backup, no leftovers', { timeout: 300_000 }, async () => {
    const workflowId = `pr-backup-${Date.now()}`;
    const handle = await client.workflow.start(BACKUP_WORKFLOW_TYPE, { taskQueue: setup.config.temporal.taskQueue, workflowId, args: [{ database: 'pr_source' }] });

    // Restart the server the moment pg_dump is streaming a table.
    const watcher = new pg.Client({ connectionString: cluster.adminUrl() });
    await watcher.connect();
    const deadline = Date.now() + 120_000;
    try {
      for (;;) {
        const { rows } = await watcher.query(`SELECT 1 FROM pg_stat_activity WHERE datname = 'pr_source' AND state = 'active' AND query LIKE 'COPY %'`);
        if (rows.length) break;
        assert.ok(Date.now() < deadline, 'pg_dump never started copying');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await watcher.end().catch(() => undefined);
    }
    await cluster.stop();
    await cluster.start();

    const result = (await handle.result()) as BackupWorkflowResult;
    const db = setup.config.databases[0]!;

    // By retry: the interrupted attempt failed and a second one made the backup.
    const history = await handle.fetchHistory();
    const dumpAttempts = (history.events ?? [])
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'dumpDatabase')
      .map((e) => Number(e.eventId));
    assert.equal(dumpAttempts.length, 1, 'one dump step');
    const started = (history.events ?? []).find((e) => e.activityTaskStartedEventAttributes && Number(e.activityTaskStartedEventAttributes.scheduledEventId) === dumpAttempts[0]);
    assert.ok((started?.activityTaskStartedEventAttributes?.attempt ?? 1) >= 2, `the dump was retried (attempt ${started?.activityTaskStartedEventAttributes?.attempt})`);

    const catalogued = await new Catalog(localStorageFor(db)).list(db.name);
    assert.deepEqual(catalogued.map((m) => m.id), [result.backupId], 'exactly one catalogued backup');
    const files = readdirSync(path.join(db.backupDir, db.name));
    assert.deepEqual(files.filter((f) => /partial|pending|tmp/.test(f)), [], `no leftovers: ${files.join(', ')}`);
    assert.deepEqual(files.filter((f) => f.endsWith('.enc')).sort(), storedObjects(catalogued[0]!).map((o) => path.basename(o.key)).sort(), 'the objects of one backup');
    const documents = catalogued[0]!.tables.find((t) => t.name === 'documents');
    assert.equal(documents?.rows, 240000);
  });
});
