/**
 * Issue 11, item 3: a `--tables` restore of a parts backup reads only those tables' parts (the
 * archive, the globals and every other table's parts may be gone), a partitioned table named as a
 * new user would (`transactions`) comes back with all its partitions in one transaction, and a
 * table with an odd name is named in pg_dump's spelling.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localStorageFor } from '../../src/backup/repository';
import { Catalog } from '../../src/catalog/catalog';
import type { Manifest } from '../../src/catalog/manifest';
import { findDatabase } from '../../src/config/config';
import { isParts, partsOfTable, storedObjects } from '../../src/parts/parts-of';
import {
  BACKUP_WORKFLOW_TYPE,
  type BackupWorkflowResult,
} from '../../workflows/definitions';
import { contentOf } from '../harness/compare';
import { query, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { restoreRunner } from '../harness/restores';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

const SALES = '"Sales Q1"."Order items"';

describe('--tables restores of a parts backup', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let url: string;
  let taken: BackupWorkflowResult;
  let manifest: Manifest;
  let atBackup: Awaited<ReturnType<typeof contentOf>>;

  const restore = restoreRunner(() => client, () => setup.config.temporal.taskQueue, 'tp', () => ({ database: 'tp_src', backup: taken.backupId }));
  const failure = (err: unknown) => String(((err as Error).cause as Error | undefined)?.cause ?? (err as Error).cause ?? err);

  before(async () => {
    servers = await testServers();
    ({ url } = await seededDatabase(servers, 'tp_src', { users: 30, transactions: 900 }));
    await servers.cluster.sql('GRANT SET ON PARAMETER session_replication_role TO tp_src_owner');
    await query(url, `CREATE SCHEMA "Sales Q1";
      CREATE TABLE "Sales Q1"."Order items" (id int PRIMARY KEY, "Qty" int, note text);
      INSERT INTO "Sales Q1"."Order items" SELECT g, g % 7, 'item ' || g FROM generate_series(1, 50) g;
      CREATE TABLE public."order items" (id int PRIMARY KEY, v text);
      INSERT INTO public."order items" SELECT g, 'lower ' || g FROM generate_series(1, 5) g`);
    setup = await testConfig(servers, 'table-parts', [{ name: 'tp_src', url, production: false, allowForceRestore: true }], { env: { BACKUP_FORMAT: 'parts' } });
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
    taken = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `tp-backup-${Date.now()}`,
      args: [{ database: 'tp_src' }],
    })) as BackupWorkflowResult;
    manifest = await new Catalog(localStorageFor(findDatabase(setup.config, 'tp_src'))).get(taken.backupId);
    assert.ok(isParts(manifest), 'a parts backup');
    atBackup = await contentOf(url);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('`--tables transactions`, a partitioned table, restores the parent with all its partitions in one transaction', async () => {
    const partitions = ['public.transactions_2024', 'public.transactions_2025', 'public.transactions_2026'];
    await query(url, `UPDATE public.transactions SET memo = 'changed after the backup';
      DELETE FROM public.transactions WHERE id % 3 = 0;
      UPDATE public.users SET full_name = 'kept'`);
    const damaged = await contentOf(url);
    for (const p of partitions) assert.notDeepEqual(damaged[p], atBackup[p], `${p} was changed`);

    const result = await restore({ mode: 'tables', tables: ['transactions'] });
    assert.equal(result.outcome, 'restored');
    assert.deepEqual(result.plan.tables, ['public.transactions']);
    assert.match(result.plan.summary, /public\.transactions \(partitioned: 3 partitions\)/);
    assert.deepEqual(result.verification!.tables, [{ table: 'public.transactions', expected: 900, actual: 900 }]);
    const now = await contentOf(url);
    for (const p of partitions) assert.deepEqual(now[p], atBackup[p], `${p} is as at the backup`);
    assert.deepEqual(now['public.users'], damaged['public.users'], 'other tables keep their changes');
  });

  it('a partitioned restore that fails in one partition changes none of them', async () => {
    await query(url, `UPDATE public.transactions SET memo = 'changed again'`);
    const before = await contentOf(url);
    // The 2026 partition on the target no longer takes the rows its part holds: its COPY fails.
    await query(url, `ALTER TABLE public.transactions_2026 ADD CONSTRAINT no_rows CHECK (false) NOT VALID`);
    try {
      const failed = await restore({ mode: 'tables', tables: ['public.transactions'] }).catch((err: unknown) => err);
      assert.ok(failed instanceof Error, 'the restore fails');
      assert.match(failure(failed), /no_rows.*rolled back|rolled back.*no_rows/s);
      assert.deepEqual(await contentOf(url), before, 'no partition changed');
    } finally {
      await query(url, `ALTER TABLE public.transactions_2026 DROP CONSTRAINT no_rows`);
    }
  });

  it('a table named in pg_dump\'s spelling, "Sales Q1"."Order items", is restored; its look-alike is not touched', async () => {
    await query(url, `DELETE FROM "Sales Q1"."Order items" WHERE id > 10; UPDATE public."order items" SET v = 'kept'`);
    const result = await restore({ mode: 'tables', tables: [SALES] });
    assert.equal(result.outcome, 'restored');
    assert.deepEqual(result.plan.tables, ['Sales Q1.Order items']);
    const now = await contentOf(url);
    assert.deepEqual(now['"Sales Q1"."Order items"'], atBackup['"Sales Q1"."Order items"']);
    assert.notDeepEqual(now['public."order items"'], atBackup['public."order items"'], 'public."order items" keeps its change');
    // Unquoted, pg_dump folds to lower case: `Sales Q1.Order items` is how the plan prints it, `ORDER ITEMS` names public."order items".
    const refused = await restore({ mode: 'tables', tables: ['"Sales Q1".order items'] }).catch((err: unknown) => err);
    assert.ok(refused instanceof Error);
    assert.match(failure(refused), /"\\"Sales Q1\\"\.order items" is not in backup .*pg_dump/s);
  });

  it('reads only that table\'s parts: with every other object of the backup gone, it still succeeds', async () => {
    const db = findDatabase(setup.config, 'tp_src');
    const categories = manifest.tables.find((t) => t.schema === 'public' && t.name === 'categories')!;
    const own = new Set(partsOfTable(manifest, categories.oid!).map((p) => p.name));
    const others = storedObjects(manifest).filter((o) => !own.has(o.name));
    assert.ok(others.some((o) => o.name === 'archive') && others.some((o) => o.name === 'globals'), 'the archive and the globals go too');
    for (const o of others) rmSync(path.join(db.backupDir, o.key));
    for (const o of others) assert.equal(existsSync(path.join(db.backupDir, o.key)), false);

    await query(url, `UPDATE public.categories SET name = 'changed after the backup'`);
    const result = await restore({ mode: 'tables', tables: ['categories'] });
    assert.equal(result.outcome, 'restored');
    assert.deepEqual((await contentOf(url))['public.categories'], atBackup['public.categories']);

    // Any other table now fails while planning, naming the missing part, before anyone is asked.
    const refused = await restore({ mode: 'tables', tables: ['users'] }).catch((err: unknown) => err);
    assert.ok(refused instanceof Error);
    assert.match(failure(refused), new RegExp(`part t\\d+-0000 of backup ${taken.backupId} .* is missing`));
  });
});
