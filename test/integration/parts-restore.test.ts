/**
 * Issue 11, the read side of a parts backup (BACKUP_PARALLEL_JOBS=2, 64 KiB parts so that the
 * ledger's partitions are several parts each): a full restore through the restore workflow gives
 * back every row and every index, key, foreign key, trigger and materialized view; a schema-only
 * restore gives back the schema alone; verification names a part that is missing, swapped,
 * truncated or altered; a drill takes the backup from S3 and restores its parts in parallel; the
 * offsite copy holds every part, each with the manifest's SHA-256, and verifies there. Single-stream
 * backups keep their own path.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { catalogBackup } from '../../src/backup/catalog-backup';
import { dumpToRepository } from '../../src/backup/dump';
import { catalogFor, localStorageFor, storageNamed } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { Catalog } from '../../src/catalog/catalog';
import type { Manifest } from '../../src/catalog/manifest';
import { backupId } from '../../src/catalog/naming';
import { loadConfig } from '../../src/config/load';
import { keyringFor } from '../../src/crypto/keys';
import { isParts, partObjectKeyOf, partsOfTable, storedObjects } from '../../src/parts/parts-of';
import type { PartRecord } from '../../src/parts/part-record';
import { replicateBackup } from '../../src/replication/replicate';
import { dropScratch, restoreIntoScratch } from '../../src/restore/full';
import { LocalStorage } from '../../src/storage/local';
import {
  BACKUP_WORKFLOW_TYPE,
  DRILL_WORKFLOW_TYPE,
  RESTORE_WORKFLOW_TYPE,
  type BackupWorkflowResult,
  type DrillReport,
  type RestoreWorkflowInput,
  type RestoreWorkflowResult,
} from '../../workflows/definitions';
import { contentOf, schemaOf } from '../harness/compare';
import { nextSecond, query, s3Destination, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

/** What the seeded ledger lacks: a materialized view with an index, a trigger, a unique key, an index of its own, a sequence moved on, tables with no column to copy. */
const EXTRAS = `
  CREATE MATERIALIZED VIEW public.spend_by_category AS SELECT category_id, count(*) AS n, sum(amount) AS total FROM public.transactions GROUP BY category_id;
  CREATE UNIQUE INDEX ON public.spend_by_category (category_id);
  CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.memo := coalesce(NEW.memo, ''); RETURN NEW; END $$;
  CREATE TRIGGER transactions_touch BEFORE INSERT ON public.transactions FOR EACH ROW EXECUTE FUNCTION public.touch();
  ALTER TABLE public.accounts ADD CONSTRAINT accounts_user_name UNIQUE (user_id, name);
  CREATE INDEX ON audit.events (actor, at);
  CREATE SEQUENCE public.invoice_no START 1000;
  SELECT setval('public.invoice_no', 4242);
  CREATE TABLE public.heartbeat ();
  INSERT INTO public.heartbeat DEFAULT VALUES; INSERT INTO public.heartbeat DEFAULT VALUES;
  CREATE TABLE public.constant (one int GENERATED ALWAYS AS (1) STORED);
  INSERT INTO public.constant DEFAULT VALUES;
`;

/** Indexes, constraints (by kind), triggers and materialized views of a database, by name: what the post-data section makes. */
async function postDataOf(url: string): Promise<Record<string, string[]>> {
  const names = async (sql: string) => (await query<{ n: string }>(url, sql)).map((r) => r.n);
  return {
    indexes: await names(`SELECT format('%I.%I valid=%s', n.nspname, c.relname, i.indisvalid) AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1`),
    constraints: await names(`SELECT format('%s %s %s', conrelid::regclass, conname, contype) AS n FROM pg_constraint WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) ORDER BY 1`),
    triggers: await names(`SELECT format('%s %s', tgrelid::regclass, tgname) AS n FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`),
    matviews: await names(`SELECT format('%s populated=%s', oid::regclass, relispopulated) AS n FROM pg_class WHERE relkind = 'm' ORDER BY 1`),
  };
}

describe('parts format: parallel full and schema-only restores, verification naming a part, drills and replication', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let backup: BackupWorkflowResult;
  let manifest: Manifest;
  let atBackup: Awaited<ReturnType<typeof contentOf>>;
  let postDataAtBackup: Record<string, string[]>;
  const admin = (db = 'ps_source') => servers.cluster.adminUrl(db);
  const restore = async (input: Partial<RestoreWorkflowInput>) =>
    (await client.workflow.execute(RESTORE_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `ps-restore-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`,
      args: [{ database: 'ps_source', requestedBy: 'test', force: true, ...input }],
    })) as RestoreWorkflowResult;

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'ps_source', { users: 300, transactions: 20_000 });
    await query(source.url, EXTRAS); // as the owner, who takes the backups
    await servers.cluster.sql('ALTER ROLE ps_source_owner CREATEDB');
    const copyUrl = new URL(source.url);
    copyUrl.pathname = '/ps_copy';
    const schemaUrl = new URL(source.url);
    schemaUrl.pathname = '/ps_schema';
    const forcible = { production: false, allowForceRestore: true };
    setup = await testConfig(
      servers,
      'parts-restore',
      [
        { name: 'ps_source', url: source.url, ...forcible, drill: { criticalTables: ['public.transactions_2025', 'public.accounts'] } },
        { name: 'ps_copy', url: copyUrl.toString(), ...forcible },
        { name: 'ps_schema', url: schemaUrl.toString(), ...forcible },
      ],
      {
        destinations: [await s3Destination(servers.s3, 'offsite', 'ps-offsite')],
        env: { BACKUP_FORMAT: 'parts', BACKUP_PARALLEL_JOBS: '2', BACKUP_PART_SIZE: '64KiB', BACKUP_NOTIFY_SUCCESS: 'false' },
      },
    );
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
    atBackup = await contentOf(admin());
    postDataAtBackup = await postDataOf(admin());
    backup = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `ps-backup-${Date.now()}`,
      args: [{ database: 'ps_source' }],
    })) as BackupWorkflowResult;
    manifest = await catalogFor(setup.config.databases[0]!).get(backup.backupId);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('is a parts backup whose ledger partitions are several parts each', () => {
    assert.ok(isParts(manifest));
    const partition = manifest.tables.find((t) => t.schema === 'public' && t.name === 'transactions_2025')!;
    assert.ok(partsOfTable(manifest, partition.oid!).length >= 3, `${partsOfTable(manifest, partition.oid!).length} parts`);
    assert.equal(manifest.largeObjects, 1);
    assert.match(manifest.verification.method, /parts/);
  });

  it('restores in full through the workflow: every row, large object, sequence, index, key, foreign key, trigger and materialized view', async () => {
    const result = await restore({ target: 'ps_copy', backup: backup.backupId });
    assert.equal(result.outcome, 'restored');
    assert.ok(result.verification!.tables.every((t) => t.actual === t.expected));
    assert.deepEqual(await contentOf(admin('ps_copy')), atBackup);
    assert.deepEqual(await postDataOf(admin('ps_copy')), postDataAtBackup);
    assert.ok(postDataAtBackup.constraints!.some((c) => / f$/.test(c)) && postDataAtBackup.indexes!.length > 10, 'the source has foreign keys and indexes to restore');
    assert.equal(await schemaOf(admin('ps_copy')), await schemaOf(admin()));
    const [seq] = await query<{ v: string }>(admin('ps_copy'), `SELECT nextval('public.invoice_no')::text AS v`);
    assert.equal(seq!.v, '4243');
  });

  it('restores the schema alone: no rows, every index, key and trigger', async () => {
    const result = await restore({ target: 'ps_schema', mode: 'schema-only', backup: backup.backupId });
    assert.equal(result.outcome, 'restored');
    const content = await contentOf(admin('ps_schema'));
    assert.deepEqual(Object.values(content).filter((t) => t.rows > 0), []);
    const expected = { ...postDataAtBackup, matviews: postDataAtBackup.matviews!.map((m) => m.replace('populated=true', 'populated=false')) };
    const actual = await postDataOf(admin('ps_schema'));
    // A materialized view refreshed over empty tables is populated (with no rows), as a plain pg_restore --schema-only leaves it.
    assert.deepEqual({ ...actual, matviews: actual.matviews!.map((m) => m.replace('populated=true', 'populated=false')) }, expected);
  });

  it('fails verification naming the part that is missing, swapped with a sibling, truncated or altered', async () => {
    const db = setup.config.databases[0]!;
    const partition = manifest.tables.find((t) => t.schema === 'public' && t.name === 'transactions_2025')!;
    const [a, b] = partsOfTable(manifest, partition.oid!) as [PartRecord, PartRecord];
    const repo = path.join(setup.env.BACKUP_DIR!);
    // Each case: the damage, the parts a message may name (two swapped parts both fail, the first one read is reported), what it says.
    const cases: Array<[string, (file: (p: PartRecord) => string) => void, PartRecord[], RegExp]> = [
      ['missing', (file) => rmSync(file(a)), [a], /is missing/],
      ['swapped', (file) => {
        renameSync(file(a), `${file(a)}.x`);
        renameSync(file(b), file(a));
        renameSync(`${file(a)}.x`, file(b));
      }, [a, b], /is not that part: it was written for another part or backup/],
      ['truncated', (file) => truncateSync(file(b), readFileSync(file(b)).length - 1), [b], /chunk \d+ fails authentication as the final chunk/],
      ['altered', (file) => {
        const bytes = readFileSync(file(a));
        bytes[Math.floor(bytes.length / 2)]! ^= 0x20;
        writeFileSync(file(a), bytes);
      }, [a], /chunk \d+ fails authentication/],
    ];
    for (const [what, damage, parts, message] of cases) {
      // A copy of the repository each time: the workflow's copy stays sound for the other tests.
      const copy = mkdtempSync(path.join(tmpdir(), `lifeline-parts-${what}-`));
      cpSync(path.join(repo, db.name), path.join(copy, db.name), { recursive: true });
      const storage = new LocalStorage('copy', copy);
      damage((p) => storage.describe(partObjectKeyOf(manifest, p)));
      await assert.rejects(verifyBackup(storage, manifest, keyringFor(setup.config), { jobs: 2 }), (err: Error) => {
        assert.match(err.message, new RegExp(`^part (${parts.map((p) => p.name).join('|')}) of backup ${manifest.id} `), what);
        assert.match(err.message, message, what);
        return true;
      });
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('replicates every part to S3, each with the manifest\'s SHA-256, and the copy verifies there', async () => {
    assert.deepEqual(backup.replication?.map((r) => [r.destination, r.status]), [['offsite', 'replicated']]);
    const offsite = storageNamed(setup.config, setup.config.databases[0]!, 'offsite');
    const copy = await new Catalog(offsite).get(backup.backupId);
    assert.deepEqual(copy.parts, manifest.parts);
    // Every object of the backup, its manifest (and a key envelope, if it has one); nothing else, nothing half-written.
    const listed = (await offsite.list(`ps_source/${backup.backupId}.`)).map((o) => o.key).filter((k) => !k.endsWith('.key.json')).sort();
    assert.deepEqual(listed, [...storedObjects(copy).map((o) => o.key), `ps_source/${backup.backupId}.manifest.json`].sort());
    for (const object of storedObjects(copy)) assert.equal((await offsite.stat(object.key))?.size, object.storedBytes, object.name);
    await verifyBackup(offsite, copy, keyringFor(setup.config), { jobs: 2 });
  });

  it('drills from S3: every part downloaded and checked, the key proven, the parts restored in parallel and checked', async () => {
    const report = (await client.workflow.execute(DRILL_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `ps-drill-${Date.now()}`,
      args: [{ database: 'ps_source', kind: 'manual', requestedBy: 'test' }],
    })) as DrillReport;
    assert.equal(report.passed, true, report.failure);
    assert.equal(report.backup?.backupId, backup.backupId);
    assert.deepEqual(report.steps.map((s) => s.name), ['download', 'decrypt', 'restore', 'verify']);
    assert.ok(report.checks.length >= 3 && report.checks.every((c) => c.ok), JSON.stringify(report.checks));
    assert.deepEqual(report.checks.filter((c) => c.name.startsWith('checksum of')).map((c) => c.name), ['checksum of public.transactions_2025', 'checksum of public.accounts']);
    assert.equal(report.scratchDropped, true);
  });

  it('keeps single-stream backups on their own path: verified, restored in full, replicated and drilled as before', async () => {
    // The same configuration with BACKUP_FORMAT=stream: what every backup taken before the parts format is.
    const config = loadConfig({ cwd: setup.dir, env: { ...setup.env, BACKUP_FORMAT: 'stream' } });
    const db = config.databases[0]!;
    await nextSecond();
    const record = await dumpToRepository(config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
    assert.equal(record.format, undefined);
    const { verification } = await verifyBackup(localStorageFor(db), record, keyringFor(config), { jobs: 2 });
    assert.equal(verification.method, 'sha256 + authenticated decryption + pg_restore --list');
    const stream = await catalogBackup(db, record, verification, 'test', keyringFor(config));
    await restoreIntoScratch(config, { storage: localStorageFor(db), manifest: stream, target: db, scratch: 'ps_stream_copy', schemaOnly: false });
    try {
      assert.deepEqual(await contentOf(admin('ps_stream_copy')), atBackup);
      assert.deepEqual(await postDataOf(admin('ps_stream_copy')), postDataAtBackup);
    } finally {
      await dropScratch(db, 'ps_stream_copy');
    }
    assert.equal((await replicateBackup(config, db, stream.id, 'offsite')).status, 'replicated');
    const report = (await client.workflow.execute(DRILL_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `ps-drill-stream-${Date.now()}`,
      args: [{ database: 'ps_source', kind: 'manual', requestedBy: 'test' }],
    })) as DrillReport;
    assert.equal(report.backup?.backupId, stream.id, 'the newest offsite backup is the single-stream one');
    assert.equal(report.passed, true, report.failure);
  });
});
