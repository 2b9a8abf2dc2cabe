/**
 * Issue 10, items 1-3: names that come from the database are data, never code or syntax.
 * A table named `$lifeline$\!\touch${IFS}<canary>;#` must not run a shell in a table restore,
 * `public."order items"` must not fail verification, and a database whose every name is hostile
 * goes through backup → verify → full, --tables and data-only restores unchanged.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { after, before, describe, it } from 'node:test';
import { localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { qualifiedName } from '../../src/catalog/manifest';
import { findDatabase } from '../../src/config/config';
import { keyringFor } from '../../src/crypto/keys';
import { pgClientConfig, quoteIdent } from '../../src/postgres/connection';
import { Catalog } from '../../src/catalog/catalog';
import { partsOfTable } from '../../src/parts/parts-of';
import {
  BACKUP_WORKFLOW_TYPE,
  type BackupWorkflowResult,
} from '../../workflows/definitions';
import { contentOf, schemaOf } from '../harness/compare';
import { query, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { createHostileDatabase, shellTableName, type HostileDatabase } from '../harness/hostile-names';
import { restoreRunner } from '../harness/restores';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

describe('hostile names: names from the database are data, never code', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let canaryDir: string;
  let canary: string;
  let hostile: HostileDatabase;
  let shellDb: { url: string };

  const backup = async (database: string) =>
    (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `hn-backup-${database}-${Date.now()}`,
      args: [{ database }],
    })) as BackupWorkflowResult;
  const restore = restoreRunner(() => client, () => setup.config.temporal.taskQueue, 'hn');
  const noShellRan = () => assert.equal(existsSync(canary), false, `a shell ran: ${canary} exists`);

  before(async () => {
    servers = await testServers();
    // Short: the path is part of a table name (63 bytes at most).
    canaryDir = mkdtempSync('/tmp/hn-');
    chmodSync(canaryDir, 0o777); // whoever would run the shell (worker or server) could write here
    canary = path.join(canaryDir, 'canary');
    hostile = await createHostileDatabase(servers, 'hn', canary);
    // A plain database holding the shell-named table alone (no other hostile name in its way).
    const seeded = await seededDatabase(servers, 'hn_shell', { users: 5, transactions: 20 });
    shellDb = seeded;
    // What a restoring role needs (README): create databases, end sessions, bypass FK cascades.
    await servers.cluster.sql('ALTER ROLE hn_shell_owner CREATEDB');
    await servers.cluster.sql('GRANT SET ON PARAMETER session_replication_role TO hn_shell_owner');
    await servers.cluster.sql('GRANT pg_signal_backend TO hn_shell_owner');
    const shellTable = `public.${quoteIdent(shellTableName(canary))}`;
    await query(seeded.url, `CREATE TABLE ${shellTable} (id int PRIMARY KEY, v text); INSERT INTO ${shellTable} SELECT g, 'row ' || g FROM generate_series(1, 5) g`);
    const forcible = { production: false, allowForceRestore: true };
    setup = await testConfig(servers, 'hostile', [
      { name: 'hn_hostile', url: hostile.url, ...forcible },
      { name: 'hn_shell', url: seeded.url, ...forcible },
    ]);
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
    if (canaryDir) rmSync(canaryDir, { recursive: true, force: true });
  });

  it('a --tables restore of a table named $lifeline$\\!\\touch… runs no shell and restores its rows', async () => {
    const shellName = `public.${shellTableName(canary)}`;
    const taken = await backup('hn_shell');
    const atBackup = await contentOf(shellDb.url);
    await query(shellDb.url, `DELETE FROM public.${quoteIdent(shellTableName(canary))} WHERE id > 2`);
    const result = await restore({ database: 'hn_shell', mode: 'tables', tables: [shellName], backup: taken.backupId }).catch((err: Error) => err);
    noShellRan();
    assert.ok(!(result instanceof Error), `the restore failed: ${String((result as Error).cause ?? result)}`);
    assert.equal(result.outcome, 'restored');
    assert.deepEqual(await contentOf(shellDb.url), atBackup);
  });

  describe('a database whose every name is hostile', () => {
    let first: BackupWorkflowResult;
    let atBackup: Awaited<ReturnType<typeof contentOf>>;
    let schemaAtBackup: string;
    /** Changes every table's rows, so that each restore below has something to undo. */
    const damage = async () => {
      const db = new pg.Client(pgClientConfig(hostile.url));
      await db.connect();
      try {
        for (const [schema, name] of [...hostile.tables].reverse()) {
          await db.query(`DELETE FROM ${quoteIdent(schema)}.${quoteIdent(name)} WHERE id % 2 = 0 AND id > 1`);
        }
      } finally {
        await db.end();
      }
      assert.notDeepEqual(await contentOf(hostile.url), atBackup);
    };

    before(async () => {
      first = await backup('hn_hostile');
      atBackup = await contentOf(hostile.url);
      schemaAtBackup = await schemaOf(hostile.url);
    });

    it('backs up and verifies it (public."order items" included), recording each table by OID', async () => {
      const db = findDatabase(setup.config, 'hn_hostile');
      const storage = localStorageFor(db);
      const manifest = await new Catalog(storage).get(first.backupId);
      const names = manifest.tables.map(qualifiedName);
      for (const [schema, name] of hostile.tables) assert.ok(names.includes(`${schema}.${name}`), `${schema}.${name} is in the manifest`);
      assert.ok(manifest.tables.every((t) => typeof t.oid === 'number'));
      const again = await verifyBackup(storage, manifest, keyringFor(setup.config));
      // The rows of every table are in parts of its own (by OID), none in the archive.
      assert.equal(manifest.format, 'parts-v1');
      assert.equal(again.toc.tableDataEntries, 0);
      for (const t of manifest.tables.filter((t) => t.kind === 'table')) assert.ok(partsOfTable(manifest, t.oid!).length >= 1, `${qualifiedName(t)} has a part`);
      noShellRan();
    });

    it('a full restore gives back an identical database', async () => {
      await damage();
      const result = await restore({ database: 'hn_hostile', backup: first.backupId });
      assert.equal(result.outcome, 'restored');
      assert.ok(result.verification!.tables.every((t) => t.actual === t.expected));
      assert.deepEqual(await contentOf(hostile.url), atBackup);
      assert.equal(await schemaOf(hostile.url), schemaAtBackup);
      noShellRan();
    });

    it('a --tables restore naming each hostile table gives back their rows; a name two tables print alike is refused', async () => {
      await damage();
      const names = hostile.tables.map(([schema, name]) => `${schema}.${name}`);
      // public."dot.ted \gexec" and "public.dot"."ted \gexec" print alike: naming them is refused before anything runs.
      const lookalike = names.filter((n, i) => names.indexOf(n) !== i);
      assert.deepEqual(lookalike, ['public.dot.ted \\gexec']);
      const refused = await restore({ database: 'hn_hostile', mode: 'tables', tables: lookalike, backup: first.backupId }).catch((err: Error) => err);
      assert.ok(refused instanceof Error);
      assert.match(String((refused.cause as Error | undefined)?.cause ?? refused.cause), /is ambiguous/);
      const tables = names.filter((n) => !lookalike.includes(n));
      const result = await restore({ database: 'hn_hostile', mode: 'tables', tables, backup: first.backupId });
      assert.equal(result.outcome, 'restored');
      assert.deepEqual(result.plan.tables.sort(), [...tables].sort());
      assert.ok(result.verification!.tables.every((t) => t.actual === t.expected));
      const after = await contentOf(hostile.url);
      const untouched = (t: string) => t === '"public.dot"."ted \\gexec"' || t === 'public."dot.ted \\gexec"';
      for (const t of Object.keys(atBackup).filter((t) => !untouched(t))) assert.deepEqual(after[t], atBackup[t], t);
      noShellRan();
    });

    it('a --tables restore that would break a foreign key between hostile names changes nothing', async () => {
      const [parent, child] = [hostile.tables[0]!, hostile.tables[2]!]; // "order items" and the table referencing it
      const db = new pg.Client(pgClientConfig(hostile.url));
      await db.connect();
      try {
        await db.query(`INSERT INTO ${quoteIdent(parent[0])}.${quoteIdent(parent[1])} (id) VALUES (999)`);
        await db.query(`INSERT INTO ${quoteIdent(child[0])}.${quoteIdent(child[1])} VALUES (999, 'references a row the backup lacks', 999)`);
      } finally {
        await db.end();
      }
      const before = await contentOf(hostile.url);
      const failed = await restore({ database: 'hn_hostile', mode: 'tables', tables: [`${parent[0]}.${parent[1]}`], backup: first.backupId }).catch((err: Error) => err);
      assert.ok(failed instanceof Error, 'the restore fails');
      assert.match(String((failed.cause as Error | undefined)?.cause ?? failed.cause), /would break foreign key/);
      assert.deepEqual(await contentOf(hostile.url), before, 'nothing changed');
      noShellRan();
    });

    it('a data-only restore gives back every row', async () => {
      await damage();
      const result = await restore({ database: 'hn_hostile', mode: 'data-only', backup: first.backupId });
      assert.equal(result.outcome, 'restored');
      assert.deepEqual(await contentOf(hostile.url), atBackup);
      assert.equal(await schemaOf(hostile.url), schemaAtBackup);
      noShellRan();
    });
  });
});
