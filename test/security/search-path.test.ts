/**
 * (Found by red team 2) A database's owner controls the search path of sessions on it: a target URL's
 * `?options=-c search_path=evil,pg_catalog`, or simply `ALTER DATABASE ... SET search_path = evil,
 * pg_catalog`. The table restore's fixed SQL (`format('DELETE FROM %s', t::regclass)`) then called the
 * owner's better-matching `evil.format(text, regclass)` with the worker's role: the owner became
 * superuser. Target URLs may not set options now, and every session Lifeline opens starts with
 * search_path pg_catalog, pg_temp (startup option, after any of the URL's), its fixed SQL qualified.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { localStorageFor } from '../../src/backup/repository';
import { Catalog } from '../../src/catalog/catalog';
import { findDatabase } from '../../src/config/config';
import { resolveTables } from '../../src/restore/plan';
import { restoreTables } from '../../src/restore/tables';
import { resolveTarget } from '../../src/restore/target';
import { BACKUP_WORKFLOW_TYPE, type BackupWorkflowResult } from '../../workflows/definitions';
import { query, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

describe('the search path of the sessions Lifeline opens', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let url: string;

  before(async () => {
    servers = await testServers();
    ({ url } = await seededDatabase(servers, 'rt2_opt', { users: 20, transactions: 100 }));
    setup = await testConfig(servers, 'rt2-options', [{ name: 'rt2_opt', url, production: false, allowForceRestore: true }]);
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
  }, { timeout: 600_000 });
  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('the owner\'s function on the search path does not run with the worker\'s role', async () => {
    const taken = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `rt2-opt-backup-${Date.now()}`,
      args: [{ database: 'rt2_opt' }],
    })) as BackupWorkflowResult;
    const db = findDatabase(setup.config, 'rt2_opt');
    const manifest = await new Catalog(localStorageFor(db)).get(taken.backupId);
    // The database owner (not a superuser) plants a better-matching format() in a schema of its own.
    await query(url, `CREATE SCHEMA evil;
      CREATE FUNCTION evil.format(text, regclass) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN
        IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
          EXECUTE 'ALTER ROLE rt2_opt_owner SUPERUSER';
        END IF;
        RETURN pg_catalog.format($1, $2);
      END $$;`);
    // A restore target URL may not set server options at all.
    const targetUrl = `${servers.cluster.adminUrl('rt2_opt')}?options=${encodeURIComponent('-c search_path=evil,pg_catalog')}`;
    await assert.rejects(resolveTarget(setup.config, targetUrl), /holds "options"/);
    // A configured URL may (the operator's own): Lifeline's search path follows it and wins.
    const target = { ...db, url: targetUrl };
    await restoreTables(setup.config, { storage: localStorageFor(db), manifest, target, tables: resolveTables(manifest, ['categories']) } as Parameters<typeof restoreTables>[1]);
    const [role] = await servers.cluster.sql<{ rolsuper: boolean }>(`SELECT rolsuper FROM pg_roles WHERE rolname = 'rt2_opt_owner'`);
    assert.equal(role?.rolsuper, false, 'BREAK: the database owner became superuser through ?options=-c search_path=evil,pg_catalog in the target URL');
  });

  it('without any URL option: the owner\'s ALTER DATABASE ... SET search_path does not put its function before pg_catalog', async () => {
    await servers.cluster.sql(`ALTER ROLE rt2_opt_owner NOSUPERUSER`);
    const db = findDatabase(setup.config, 'rt2_opt');
    const manifest = (await new Catalog(localStorageFor(db)).list('rt2_opt')).at(-1)!;
    await query(url, `ALTER DATABASE rt2_opt SET search_path = evil, pg_catalog`);
    // The configured database, reached as the worker's (here superuser) role: no query parameter at all.
    const target = { ...db, url: servers.cluster.adminUrl('rt2_opt') };
    await restoreTables(setup.config, { storage: localStorageFor(db), manifest, target, tables: resolveTables(manifest, ['categories']) } as Parameters<typeof restoreTables>[1]);
    const [role] = await servers.cluster.sql<{ rolsuper: boolean }>(`SELECT rolsuper FROM pg_roles WHERE rolname = 'rt2_opt_owner'`);
    assert.equal(role?.rolsuper, false, 'BREAK: the database owner became superuser through its own ALTER DATABASE SET search_path');
  });
});
