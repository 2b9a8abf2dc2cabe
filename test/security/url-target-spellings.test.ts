/**
 * (Red team) A URL target spelled so that libpq and node-postgres reach a configured (production)
 * database while the guard does not recognise it. With BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS=true
 * (scratch copies may be forced), such a URL would take `--force`: the production database replaced
 * with no approval (README: "A URL naming a configured database inherits its guards"). Host
 * spellings are resolved to addresses and inherit the guards; query parameters that re-route the
 * connection (`?port=`, `?dbname=`, …) are refused before anything starts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect as connectTcp, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { DatabaseConfig, LifelineConfig } from '../../src/config/config';
import { PrivateCluster } from '../../src/infra/postgres-cluster';
import { databaseOf } from '../../src/postgres/admin';
import { pgTool } from '../../src/postgres/binaries';
import { connect, libpqEnv, resolveConnection } from '../../src/postgres/connection';
import { identityRefusal } from '../../src/restore/server-identity';
import { resolveTarget } from '../../src/restore/target';

const run = promisify(execFile);

describe('URL targets spelled to dodge the production match (red team)', () => {
  let cluster: PrivateCluster;
  let config: LifelineConfig;
  let port = 0;

  before(async () => {
    cluster = await new PrivateCluster(mkdtempSync(path.join(tmpdir(), 'redteam-url-'))).start();
    port = cluster.port;
    await cluster.sql('CREATE DATABASE moneyflow');
    await cluster.sql("CREATE TABLE marker AS SELECT 'production moneyflow'::text AS what", 'moneyflow');
    const prod = {
      name: 'moneyflow',
      url: `postgresql://postgres@127.0.0.1:${port}/moneyflow`,
      production: true,
      allowForceRestore: false,
      fourEyes: true,
    } as unknown as DatabaseConfig;
    // Scratch copies by URL may be forced: the setting the README offers for "every such URL is a scratch copy".
    config = { databases: [prod], restore: { allowForceToUrlTargets: true }, retentionDays: 30, backupDir: '/nonexistent' } as unknown as LifelineConfig;
  }, { timeout: 180_000 });
  after(async () => cluster?.stop());

  const rerouting = () => [
    `postgresql://postgres@127.0.0.1/moneyflow?port=0${port}`, // libpq and node-postgres read 0PORT as PORT
  ];
  const hostSpellings = () => [
    `postgresql://postgres@127.1:${port}/moneyflow`, // inet_aton short form of 127.0.0.1
    `postgresql://postgres@0.0.0.0:${port}/moneyflow`, // "any" address: Linux connects to this host
    `postgresql://postgres@2130706433:${port}/moneyflow`, // 127.0.0.1 as one 32-bit number
    `postgresql://postgres@0x7f.1:${port}/moneyflow`, // hex
  ];

  it('each spelling reaches the production database, for the worker (node-postgres) and for libpq (psql, pg_restore)', async () => {
    for (const url of [...rerouting(), ...hostSpellings()]) {
      const conn = resolveConnection({ name: 'x', url } as unknown as DatabaseConfig);
      const client = await connect(conn);
      try {
        const { rows } = await client.query<{ what: string }>('SELECT what FROM public.marker'); // Lifeline's sessions search pg_catalog alone
        assert.equal(rows[0]?.what, 'production moneyflow', url);
      } finally {
        await client.end();
      }
      assert.equal(databaseOf(conn), 'moneyflow', `swapIn renames ${databaseOf(conn)} for ${url}`);
      const { stdout } = await run(pgTool('psql'), ['-X', '-At', '-c', 'SELECT what FROM marker', `--dbname=${url}`], { env: libpqEnv(conn) });
      assert.equal(stdout.trim(), 'production moneyflow', url);
    }
  });

  it('resolveTarget treats each host spelling as the configured production database: --force refused', async () => {
    const dodged: string[] = [];
    for (const url of hostSpellings()) {
      const target = await resolveTarget(config, url);
      if (target.forceRefusal === undefined || target.name !== 'moneyflow') dodged.push(`${url} → name ${target.name}, force ${target.forceRefusal === undefined ? 'ALLOWED' : 'refused'}`);
    }
    assert.deepEqual(dodged, [], `URL targets that reach production moneyflow but take --force:\n${dodged.join('\n')}`);
  });

  it('a query parameter that re-routes the connection is refused, naming it', async () => {
    for (const url of rerouting()) {
      await assert.rejects(resolveTarget(config, url), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'InvalidInput', url);
        assert.match(err.message, /holds "port".*Put host, port and database in the URL itself/, url);
        return true;
      });
    }
  });

  it('a URL through a tunnel (another port to the same server): the server identity refuses --force', async () => {
    const tunnel = createServer((inbound) => {
      const upstream = connectTcp(port, '127.0.0.1');
      inbound.pipe(upstream).pipe(inbound);
      inbound.on('error', () => upstream.destroy());
      upstream.on('error', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => tunnel.listen(0, '127.0.0.1', resolve));
    try {
      const url = `postgresql://postgres@127.0.0.1:${(tunnel.address() as AddressInfo).port}/moneyflow`;
      const target = await resolveTarget(config, url);
      assert.equal(target.forceRefusal, undefined, 'the address alone names no configured database');
      const refusal = await identityRefusal(config, resolveConnection(target));
      assert.match(refusal ?? 'force ALLOWED', /same server, system identifier \d+, and database as configured database moneyflow.*without --force/);
      // Another database on that server is not production moneyflow.
      assert.equal(await identityRefusal(config, resolveConnection({ ...target, url: url.replace('/moneyflow', '/scratch_copy') })), undefined);
      // A configured database that cannot be asked proves nothing: force refused, saying why.
      const down = { ...config, databases: [{ ...config.databases[0]!, url: 'postgresql://postgres@127.0.0.1:1/moneyflow' }] };
      assert.match((await identityRefusal(down, resolveConnection(target))) ?? 'force ALLOWED', /cannot tell whether target .* is configured database moneyflow.*without --force/);
    } finally {
      tunnel.close();
    }
  });

  it('?dbname= : the guard and swapIn cannot judge and rename different databases', async () => {
    // libpq takes the last ?dbname=, databaseOf/swapIn and node-postgres take the path: both refuse the URL.
    const url = `postgresql://postgres@127.0.0.1:${port}/moneyflow?dbname=scratch_copy`;
    await assert.rejects(resolveTarget(config, url), /holds "dbname"/);
    const conn = resolveConnection({ ...config.databases[0]!, url });
    assert.throws(() => databaseOf(conn), /holds "dbname"/);
  });
});
