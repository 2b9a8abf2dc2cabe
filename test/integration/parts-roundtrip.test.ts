/**
 * Issue 11: every row of a database with several schemas, partitions, large objects and a table
 * larger than one part survives a parallel backup (BACKUP_PARALLEL_JOBS=2, 1 MiB parts) and a
 * parallel restore, through the workflows; a `--tables` restore of a partitioned parent, named in
 * pg_dump's spelling, gives back all its partitions and nothing else.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { qualifiedName, type Manifest } from '../../src/catalog/manifest';
import { keyringFor } from '../../src/crypto/keys';
import { isParts, partObjectKeyOf, partsOfTable } from '../../src/parts/parts-of';
import { pgClientConfig, quoteIdent } from '../../src/postgres/connection';
import { BACKUP_WORKFLOW_TYPE, RESTORE_WORKFLOW_TYPE, type BackupWorkflowResult, type RestoreWorkflowInput, type RestoreWorkflowResult } from '../../workflows/definitions';
import pg from 'pg';
import { contentOf, schemaOf } from '../harness/compare';
import { testConfig, type TestSetup } from '../harness/fixtures';
import {
  contentKey,
  createPartsDatabase,
  everythingIn,
  ORDERS_PG_DUMP_SPELLING,
  PART_BYTES,
  PARTS_ENV,
  PARTS_TABLES,
  scratchDatabases,
  type PartsDatabase,
} from '../harness/parts-fixture';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

const key = contentKey;
const sqlName = ([schema, name]: readonly [string, string]) => `${quoteIdent(schema)}.${quoteIdent(name)}`;

describe('parts format: a parallel backup and a parallel restore give back every row', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let source: PartsDatabase;
  let atBackup: Awaited<ReturnType<typeof everythingIn>>;
  let backup: BackupWorkflowResult;
  let manifest: Manifest;

  const restore = async (input: Partial<RestoreWorkflowInput>) =>
    (await client.workflow.execute(RESTORE_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `pr-restore-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`,
      args: [{ database: 'pr_src', requestedBy: 'test', force: true, ...input }],
    })) as RestoreWorkflowResult;

  before(async () => {
    servers = await testServers();
    source = await createPartsDatabase(servers, 'pr_src');
    // A configured target whose database does not exist yet: a full restore creates it.
    const copyUrl = new URL(source.url);
    copyUrl.pathname = '/pr_copy';
    const forcible = { production: false, allowForceRestore: true };
    setup = await testConfig(
      servers,
      'parts-roundtrip',
      [
        { name: 'pr_src', url: source.url, ...forcible },
        { name: 'pr_copy', url: copyUrl.toString(), ...forcible },
      ],
      { env: { ...PARTS_ENV } },
    );
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
    atBackup = await everythingIn(source.adminUrl);
    backup = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `pr-backup-${Date.now()}`,
      args: [{ database: 'pr_src' }],
    })) as BackupWorkflowResult;
    manifest = await catalogFor(setup.config.databases[0]!).get(backup.backupId);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('stores a verified parts backup: every table in parts of at most about 1 MiB, counts from the parts, nothing else in the folder', async () => {
    assert.equal(manifest.status, 'verified');
    assert.ok(isParts(manifest), `format ${manifest.format}`);
    const parts = manifest.parts!;
    assert.deepEqual(parts.filter((p) => p.kind !== 'table-data').map((p) => p.kind).sort(), ['archive', 'globals']);

    // Every table that holds rows has its rows in its parts, counted as the source counts them.
    const tables = manifest.tables.filter((t) => t.kind === 'table');
    assert.equal(tables.length, Object.keys(atBackup.tables).length - 1, 'every table of the source (less the large objects entry)');
    for (const t of tables) {
      const source = atBackup.tables[key([t.schema, t.name])];
      assert.ok(source, `${qualifiedName(t)} is a table of the source`);
      const own = partsOfTable(manifest, t.oid!);
      assert.equal(t.rows, source.rows, `${qualifiedName(t)}: rows in the manifest`);
      assert.equal(own.reduce((n, p) => n + p.rows!, 0), source.rows, `${qualifiedName(t)}: rows in its parts`);
      assert.ok(t.columns?.length, `${qualifiedName(t)}: columns recorded`);
    }
    const parent = manifest.tables.find((t) => t.schema === PARTS_TABLES.orders[0] && t.name === PARTS_TABLES.orders[1])!;
    assert.equal(parent.kind, 'partitioned');
    assert.equal(manifest.tables.filter((t) => t.parentOid === parent.oid).length, 4, 'four partitions point to their parent');

    // The big table is split, and its generated and dropped columns are not copied.
    const big = manifest.tables.find((t) => t.schema === PARTS_TABLES.big[0] && t.name === PARTS_TABLES.big[1])!;
    const bigParts = partsOfTable(manifest, big.oid!);
    assert.ok(bigParts.length >= 6, `the big table (over 6 MiB) is in ${bigParts.length} parts of 1 MiB`);
    assert.ok(bigParts.every((p) => p.rows! > 0), 'no empty range parts');
    assert.ok(bigParts.every((p) => p.rawBytes < 4 * PART_BYTES), 'each range is about one part size of table');
    assert.ok(!big.columns!.includes('doubled') && !big.columns!.some((c) => c.includes('pg.dropped')), `columns ${big.columns!.join(', ')}`);

    // In the folder: the manifest and the parts it lists, each of the size it records; nothing else.
    const storage = localStorageFor(setup.config.databases[0]!);
    const folder = path.join(setup.env.BACKUP_DIR!, 'pr_src');
    const expected = parts.map((p) => path.basename(partObjectKeyOf(manifest, p)));
    assert.deepEqual(readdirSync(folder).sort(), [...expected, `${manifest.id}.manifest.json`].sort());
    for (const p of parts) assert.equal(statSync(storage.describe(partObjectKeyOf(manifest, p))).size, p.storedBytes, p.name);
    assert.equal(manifest.sizes.storedBytes, parts.reduce((n, p) => n + p.storedBytes, 0), 'stored size is the total of the parts');

    await verifyBackup(storage, manifest, keyringFor(setup.config));
  });

  it('a full restore into a new database gives back every row, large object, sequence and materialized view', async () => {
    const result = await restore({ target: 'pr_copy', backup: backup.backupId });
    assert.equal(result.outcome, 'restored');
    assert.ok(result.verification!.tables.every((t) => t.actual === t.expected));
    const copy = servers.cluster.adminUrl('pr_copy');
    assert.deepEqual(await everythingIn(copy), atBackup);
    assert.equal(await schemaOf(copy), await schemaOf(source.adminUrl));
    assert.deepEqual(await scratchDatabases(servers, 'pr_copy'), [], 'no scratch database left');
    // Still a working database: sequences hand out the next value, identities go on past the gap.
    const db = new pg.Client(pgClientConfig(copy));
    await db.connect();
    try {
      assert.equal((await db.query(`SELECT nextval('ledger.invoice_no')::int AS n`)).rows[0].n, 424243);
      const inserted = await db.query(`INSERT INTO ledger.accounts (name) VALUES ('after restore') RETURNING id::int AS id`);
      assert.equal(inserted.rows[0].id, 2006);
    } finally {
      await db.end();
    }
  });

  it('a --tables restore of the partitioned parent, in pg_dump\'s spelling, gives back every partition and nothing else', async () => {
    const [orders, big] = [sqlName(PARTS_TABLES.orders), sqlName(PARTS_TABLES.big)];
    const db = new pg.Client(pgClientConfig(source.adminUrl));
    await db.connect();
    try {
      await db.query(`DELETE FROM ${orders} WHERE id % 3 = 0`); // every partition loses rows
      await db.query(`UPDATE ${orders} SET note = 'changed after the backup' WHERE id % 5 = 0`);
      await db.query(`INSERT INTO ${orders} VALUES (99999, 1, 'new', 1, 'default partition, after the backup')`);
      await db.query(`UPDATE ${big} SET amount = 0 WHERE id <= 10`); // not restored: must stay
    } finally {
      await db.end();
    }
    const changed = await contentOf(source.adminUrl);
    const result = await restore({ mode: 'tables', tables: [ORDERS_PG_DUMP_SPELLING], backup: backup.backupId });
    assert.equal(result.outcome, 'restored');
    const now = await contentOf(source.adminUrl);
    const partitions = PARTS_TABLES.ordersPartitions.map(key);
    for (const t of partitions) assert.deepEqual(now[t], atBackup.tables[t], `${t} is as at the backup`);
    for (const t of Object.keys(now).filter((t) => !partitions.includes(t))) assert.deepEqual(now[t], changed[t], `${t} is untouched`);
    assert.notDeepEqual(now[key(PARTS_TABLES.big)], atBackup.tables[key(PARTS_TABLES.big)], 'the big table keeps its change');
  });
});
