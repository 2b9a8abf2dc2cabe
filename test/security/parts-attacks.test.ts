/**
 * Issue 11 review (rt): attacks on the parts format that would lose rows silently or report success
 * for an incomplete backup. Each case is a real backup of a real database.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import pg from 'pg';
import { dumpToRepository } from '../../src/backup/dump';
import { dataKeyFor } from '../../src/backup/read-backup';
import { localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import type { DumpRecord } from '../../src/catalog/manifest';
import { backupId } from '../../src/catalog/naming';
import type { DatabaseConfig, LifelineConfig } from '../../src/config/config';
import { keyringFor } from '../../src/crypto/keys';
import { openPart } from '../../src/parts/read-part';
import { pgRestoreListSink } from '../../src/postgres/pg-restore-list';
import { pipeline } from 'node:stream/promises';
import { restoreParts } from '../../src/restore/parallel-restore';
import { restoreTables } from '../../src/restore/tables';
import { createMissingRoles } from '../../src/restore/globals';
import type { Manifest } from '../../src/catalog/manifest';
import { resolveConnection } from '../../src/postgres/connection';
import { nextSecond, testConfig } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';

async function archiveToc(config: LifelineConfig, db: DatabaseConfig, record: DumpRecord) {
  const storage = localStorageFor(db);
  const key = await dataKeyFor(storage, record, keyringFor(config));
  const list = pgRestoreListSink();
  const chain = await openPart(storage, record, record.parts!.find((p) => p.kind === 'archive')!, key);
  await pipeline(...chain.stages, list.sink);
  return list.toc;
}

describe('parts format attacks (rt)', () => {
  let servers: TestServers;
  before(async () => {
    servers = await testServers();
  });

  it('a LATIN1 database with a non-ASCII table name: its rows are in its parts and not also in the archive', async () => {
    const c = servers.cluster;
    if (!(await c.sql(`SELECT 1 FROM pg_database WHERE datname = 'rt_latin1'`)).length) {
      await c.sql(`CREATE DATABASE rt_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
      await c.sql(`CREATE TABLE "café" (id int); INSERT INTO "café" SELECT generate_series(1, 10)`, 'rt_latin1');
    }
    const url = c.adminUrl('rt_latin1');
    const setup = await testConfig(servers, 'rt-latin1', [{ name: 'rt_latin1', url }], { env: { BACKUP_FORMAT: 'parts' } });
    const db = setup.config.databases[0]!;
    await nextSecond();
    const record = await dumpToRepository(setup.config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
    await verifyBackup(localStorageFor(db), record, keyringFor(setup.config));
    const toc = await archiveToc(setup.config, db, record);
    const t = record.tables.find((x) => x.name === 'café')!;
    assert.ok(t, JSON.stringify(record.tables));
    assert.deepEqual(toc.tableData.filter((e) => e.oid === t.oid), [], 'no TABLE DATA of café in the archive');
    // A full restore holds each row once.
    await c.sql('DROP DATABASE IF EXISTS rt_latin1_copy');
    await c.sql(`CREATE DATABASE rt_latin1_copy ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
    const storage = localStorageFor(db);
    await restoreParts({
      storage,
      record,
      dataKey: await dataKeyFor(storage, record, keyringFor(setup.config)),
      conn: resolveConnection({ ...db, url: c.adminUrl('rt_latin1_copy') }),
      jobs: 2,
      schemaOnly: false,
      pgRestoreArgs: ['--no-owner'],
      stallSeconds: 60,
    });
    assert.deepEqual(await c.sql(`SELECT count(*)::int AS n FROM "café"`, 'rt_latin1_copy'), [{ n: 10 }]);
  });

  it('--tables of an inheritance parent replaces the parent\'s own rows and leaves its children\'s rows alone', async () => {
    const c = servers.cluster;
    const url = await c.createDatabase('rt_inherit', 'rt_inherit_owner', 'pw-rt-inherit');
    await c.sql(`DROP TABLE IF EXISTS parent CASCADE; CREATE TABLE parent (id int, note text); CREATE TABLE child (extra int) INHERITS (parent);
      INSERT INTO parent SELECT g, 'p' FROM generate_series(1, 5) g; INSERT INTO child SELECT g, 'c', g FROM generate_series(100, 109) g;
      ALTER TABLE parent OWNER TO rt_inherit_owner; ALTER TABLE child OWNER TO rt_inherit_owner`, 'rt_inherit');
    await c.sql('GRANT SET ON PARAMETER session_replication_role TO rt_inherit_owner');
    const setup = await testConfig(servers, 'rt-inherit', [{ name: 'rt_inherit', url }], { env: { BACKUP_FORMAT: 'parts' } });
    const db = setup.config.databases[0]!;
    await nextSecond();
    const record = await dumpToRepository(setup.config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
    await c.sql(`UPDATE parent SET note = 'changed'`, 'rt_inherit');
    await restoreTables(setup.config, { storage: localStorageFor(db), manifest: record as Manifest, target: db, tables: ['public.parent'] });
    assert.deepEqual(await c.sql(`SELECT note, count(*)::int AS n FROM ONLY parent GROUP BY 1`, 'rt_inherit'), [{ note: 'p', n: 5 }], 'the parent\'s rows are the backup\'s');
    assert.deepEqual(await c.sql(`SELECT note, count(*)::int AS n FROM child GROUP BY 1`, 'rt_inherit'), [{ note: 'changed', n: 10 }], 'the child keeps its rows (not restored: not named)');
  });

  it('a table truncated and reloaded by a transaction that commits while the backup waits for its lock: the backup has its rows or fails, never none', async () => {
    const c = servers.cluster;
    const url = await c.createDatabase('rt_truncate', 'rt_truncate_owner', 'pw-rt-truncate');
    await c.sql(`DROP TABLE IF EXISTS nightly; CREATE TABLE nightly (id int); INSERT INTO nightly SELECT generate_series(1, 1000); ALTER TABLE nightly OWNER TO rt_truncate_owner`, 'rt_truncate');
    const setup = await testConfig(servers, 'rt-truncate', [{ name: 'rt_truncate', url }], { env: { BACKUP_FORMAT: 'parts' } });
    const db = setup.config.databases[0]!;
    await nextSecond();
    // A nightly reload in one transaction: TRUNCATE, INSERT, COMMIT once the backup waits on its lock.
    const loader = new pg.Client({ connectionString: c.adminUrl('rt_truncate') });
    await loader.connect();
    try {
      await loader.query('BEGIN; TRUNCATE nightly; INSERT INTO nightly SELECT generate_series(1, 2000)');
      const backup = dumpToRepository(setup.config, db, { backupId: backupId(db.name, new Date()), type: 'full' }).then((r) => r, (err: unknown) => err);
      const deadline = Date.now() + 30_000;
      for (;;) {
        const [w] = await c.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'nightly'::regclass AND NOT granted`, 'rt_truncate');
        if (w!.n > 0) break;
        if (Date.now() > deadline) throw new Error('the backup never waited for the lock');
        await new Promise((r) => setTimeout(r, 50));
      }
      await loader.query('COMMIT');
      const result = await backup;
      if (result instanceof Error) {
        assert.match(result.message, /public\.nightly was truncated or rewritten/, 'a failure names the table');
        assert.equal((result as { retryable?: boolean }).retryable, true, 'and is retried');
        return;
      }
      const record = result as DumpRecord;
      const rows = record.tables.find((t) => t.name === 'nightly')!.rows;
      assert.ok(rows === 1000 || rows === 2000, `the backup holds ${rows} rows of nightly (1000 before the reload, 2000 after)`);
    } finally {
      await loader.end();
    }
  });

  it('--with-globals never makes a created role a member of a role that is superuser on the target server', async () => {
    const c = servers.cluster;
    await c.sql(`DROP ROLE IF EXISTS rt_app; DROP ROLE IF EXISTS rt_dba; CREATE ROLE rt_dba SUPERUSER NOLOGIN`);
    const role = (name: string) => ({ name, builtin: false, rolsuper: false, rolinherit: true, rolcreaterole: false, rolcreatedb: false, rolcanlogin: true, rolreplication: false, rolbypassrls: false, rolconnlimit: -1, rolvaliduntil: null });
    // On the source server rt_dba was an ordinary role, and rt_app one of its members.
    const outcome = await createMissingRoles(resolveConnection({ name: 'postgres', url: c.adminUrl('postgres') } as DatabaseConfig), {
      version: 1,
      database: { name: 'rt_src', owner: 'rt_app' },
      roles: [role('rt_app'), role('rt_dba')],
      memberships: [{ role: 'rt_dba', member: 'rt_app', admin: false }],
      tablespaces: [],
    } as never);
    try {
      assert.deepEqual(outcome.created, ['rt_app']);
      assert.deepEqual(await c.sql(`SELECT 1 FROM pg_auth_members WHERE roleid = 'rt_dba'::regrole AND member = 'rt_app'::regrole`), [], 'rt_app is not a member of the superuser rt_dba');
      assert.ok(outcome.withheld.some((w) => /rt_app in rt_dba/.test(w)), outcome.withheld.join('; '));
    } finally {
      await c.sql(`DROP ROLE IF EXISTS rt_app; DROP ROLE IF EXISTS rt_dba`);
    }
  });
});
