/**
 * The server-identity check behind a forced restore to a URL asks the target server's
 * `postgres` database (withServer → onDatabase), once, in planRestore. Everything destructive later
 * reconnects: a table/data-only restore talks to the target database itself, and every step
 * resolves the URL again. A proxy that routes by database name (PgBouncer's [databases] section,
 * with `* =` for the rest) answers the identity check from one server and sends the restore to
 * production: `--force` replaces a production database's rows with no approval, although README
 * says a URL reaching a configured database "by server identity before a forced restore" inherits
 * its guards.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { connect as connectTcp, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DatabaseConfig, LifelineConfig } from '../../src/config/config';
import { PrivateCluster } from '../../src/infra/postgres-cluster';
import type { Client } from '@temporalio/client';
import { localStorageFor } from '../../src/backup/repository';
import { Catalog } from '../../src/catalog/catalog';
import { findDatabase } from '../../src/config/config';
import { connect, resolveConnection } from '../../src/postgres/connection';
import { swapIn } from '../../src/restore/full';
import { resolveTables } from '../../src/restore/plan';
import { forceGuard, identityRefusal } from '../../src/restore/server-identity';
import { restoreTables } from '../../src/restore/tables';
import { resolveTarget } from '../../src/restore/target';
import { BACKUP_WORKFLOW_TYPE, type BackupWorkflowResult } from '../../workflows/definitions';
import { query, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

/** A PgBouncer-like router: database `moneyflow` → production, anything else → the other server. */
function databaseRouter(routes: (database: string) => number): Promise<Server> {
  const server = createServer((inbound: Socket) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 8) {
        const len = buffered.readInt32BE(0);
        if (buffered.length < len) return;
        const code = buffered.readInt32BE(4);
        if (code === 80877103 || code === 80877104) {
          // SSLRequest / GSSENCRequest: no.
          buffered = buffered.subarray(len);
          inbound.write('N');
          continue;
        }
        const startup = buffered.subarray(0, len);
        const rest = buffered.subarray(len);
        const fields = startup.subarray(8).toString('utf8').split('\0');
        const params: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]) params[fields[i]!] = fields[i + 1]!;
        const database = params.database ?? params.user ?? '';
        inbound.off('data', onData);
        inbound.pause();
        const upstream = connectTcp(routes(database), '127.0.0.1', () => {
          upstream.write(startup);
          if (rest.length) upstream.write(rest);
          inbound.pipe(upstream).pipe(inbound);
          inbound.resume();
        });
        inbound.on('error', () => upstream.destroy());
        upstream.on('error', () => inbound.destroy());
        return;
      }
    };
    inbound.on('data', onData);
    inbound.on('error', () => undefined);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('forced URL restore through a database-routing proxy', () => {
  let prod: PrivateCluster;
  let other: PrivateCluster;
  let router: Server;
  let config: LifelineConfig;

  before(async () => {
    prod = await new PrivateCluster(mkdtempSync(path.join(tmpdir(), 'rt2-prod-'))).start();
    other = await new PrivateCluster(mkdtempSync(path.join(tmpdir(), 'rt2-other-'))).start();
    await prod.sql('CREATE DATABASE moneyflow');
    await prod.sql("CREATE TABLE marker AS SELECT 'production moneyflow'::text AS what", 'moneyflow');
    await other.sql('CREATE DATABASE moneyflow');
    await other.sql("CREATE TABLE marker AS SELECT 'scratch copy'::text AS what", 'moneyflow');
    router = await databaseRouter((db) => (db === 'moneyflow' ? prod.port : other.port));
    const configured = {
      name: 'moneyflow',
      url: `postgresql://postgres@127.0.0.1:${prod.port}/moneyflow`,
      production: true,
      allowForceRestore: false,
      fourEyes: true,
    } as unknown as DatabaseConfig;
    config = { databases: [configured], restore: { allowForceToUrlTargets: true }, retentionDays: 30, backupDir: '/nonexistent' } as unknown as LifelineConfig;
  }, { timeout: 300_000 });
  after(async () => {
    router?.close();
    await Promise.all([prod?.stop(), other?.stop()]);
  });

  it('the identity check allows --force while the target database it restores into is production moneyflow', async () => {
    const url = `postgresql://postgres@127.0.0.1:${(router.address() as AddressInfo).port}/moneyflow`;
    const target = await resolveTarget(config, url);
    assert.equal(target.forceRefusal, undefined, 'the address names no configured database (URL targets may be forced)');
    const conn = resolveConnection(target);
    // What restoreTables / data-only restores (psql, pg_restore --dbname=<url>) and the pre-restore snapshot reach:
    const client = await connect(conn);
    const reached = await client.query<{ what: string }>('SELECT what FROM public.marker').finally(() => client.end());
    assert.equal(reached.rows[0]?.what, 'production moneyflow', 'the target URL reaches production moneyflow');
    const refusal = await identityRefusal(config, conn);
    assert.notEqual(refusal, undefined, 'BREAK: --force allowed on a URL whose database is production moneyflow (identity read from the `postgres` database only)');
  });
});

/**
 * Where the restore acts, a forced restore to a URL checks again, on the very session that changes
 * the target: psql's session for a table restore (before the DELETE), the session that renames for a
 * full one. A route that reaches a configured database that refuses force, however it is spelled or
 * proxied, is refused there and nothing changes.
 */
describe('a forced restore checks the server identity on the session that acts', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let url: string;
  let refuseIdentities: string[];

  before(async () => {
    servers = await testServers();
    ({ url } = await seededDatabase(servers, 'ida_prod', { users: 20, transactions: 100 }));
    setup = await testConfig(servers, 'ida', [{ name: 'ida_prod', url, production: true, allowForceRestore: false }]);
    refuseIdentities = await forceGuard(setup.config, 'the target');
  }, { timeout: 600_000 });

  it('a table restore: psql\'s session refuses before it deletes a row', async () => {
    const client: Client = await testClient(servers, setup.config);
    const stopWorker = await runWorker(setup.config);
    try {
      const taken = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
        taskQueue: setup.config.temporal.taskQueue,
        workflowId: `ida-backup-${Date.now()}`,
        args: [{ database: 'ida_prod' }],
      })) as BackupWorkflowResult;
      const db = findDatabase(setup.config, 'ida_prod');
      const manifest = await new Catalog(localStorageFor(db)).get(taken.backupId);
      await query(url, `UPDATE categories SET name = 'changed after the backup'`);
      // A route to production that no address check matched (another user, a proxy, a tunnel).
      const target = { ...db, url: servers.cluster.adminUrl('ida_prod') };
      await assert.rejects(
        restoreTables(setup.config, { storage: localStorageFor(db), manifest, target, tables: resolveTables(manifest, ['categories']), refuseIdentities }),
        (err: { code?: string }) => err.code === 'ForceRefused',
      );
      const rows = await query<{ n: string }>(url, `SELECT count(*) AS n FROM categories WHERE name <> 'changed after the backup'`);
      assert.equal(Number(rows[0]?.n), 0, 'the refused restore changed no row');
    } finally {
      await stopWorker();
      await client.connection.close();
    }
  });

  it('a full restore: the session that renames refuses to move production aside', async () => {
    await servers.cluster.sql('DROP DATABASE IF EXISTS ida_scratch');
    await servers.cluster.sql('CREATE DATABASE ida_scratch');
    const target = { ...findDatabase(setup.config, 'ida_prod'), url: servers.cluster.adminUrl('ida_prod') };
    await assert.rejects(swapIn(target, 'ida_scratch', 'ida_prod_replaced', refuseIdentities), (err: { code?: string }) => err.code === 'ForceRefused');
    const names = await servers.cluster.sql<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'ida_%' ORDER BY 1`);
    assert.deepEqual(names.map((r) => r.datname), ['ida_prod', 'ida_scratch'], 'nothing was renamed');
  });
});
