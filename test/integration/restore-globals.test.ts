/**
 * Issue 11, item 4: a restore onto a server that lacks the backup's roles. The backup's tables are
 * owned by, and granted to, roles that are dropped after the backup (objects reassigned), as on a new
 * host. The plan says so before anyone approves; a restore without --with-globals fails on them,
 * saying what to do; with --with-globals the roles are created first (attributes and memberships as
 * recorded, no password, never SUPERUSER) and the restore succeeds.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { BACKUP_WORKFLOW_TYPE, RESTORE_WORKFLOW_TYPE, type BackupWorkflowResult, type RestoreWorkflowResult } from '../../workflows/definitions';
import { contentOf } from '../harness/compare';
import { query, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { restoreRunner } from '../harness/restores';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

describe('--with-globals: a restore creates the roles the backup uses that the server lacks', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let url: string;
  let taken: BackupWorkflowResult;
  let atBackup: Awaited<ReturnType<typeof contentOf>>;
  const suffix = randomBytes(3).toString('hex');
  const appRole = `gl_app_${suffix}`;
  const reader = `gl reader "${suffix}"`;
  const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

  const restore = restoreRunner(() => client, () => setup.config.temporal.taskQueue, 'gl', () => ({ database: 'gl_src', backup: taken.backupId }));
  const roles = async () =>
    query<{ rolname: string; rolcanlogin: boolean; rolconnlimit: number; rolsuper: boolean; rolcreatedb: boolean; rolpassword: string | null }>(
      servers.cluster.adminUrl(),
      `SELECT rolname, rolcanlogin, rolconnlimit, rolsuper, rolcreatedb, rolpassword FROM pg_authid WHERE rolname IN ('${appRole}', '${reader.replace(/'/g, "''")}') ORDER BY rolname`,
    );
  const dropRoles = async () => {
    const admin = servers.cluster.adminUrl('gl_src');
    await query(admin, `REASSIGN OWNED BY ${q(appRole)} TO gl_src_owner; DROP OWNED BY ${q(appRole)}, ${q(reader)}`);
    await servers.cluster.sql(`DROP ROLE ${q(reader)}; DROP ROLE ${q(appRole)}`);
  };

  before(async () => {
    servers = await testServers();
    ({ url } = await seededDatabase(servers, 'gl_src', { users: 20, transactions: 200 }));
    // What a restoring role needs (README), and CREATEROLE for --with-globals.
    await servers.cluster.sql('ALTER ROLE gl_src_owner CREATEDB CREATEROLE');
    await servers.cluster.sql('GRANT pg_signal_backend TO gl_src_owner');
    // The application's roles: one owns a table, a login role reads it through a grant and a membership.
    await servers.cluster.sql(`CREATE ROLE ${q(appRole)} NOLOGIN CREATEDB; CREATE ROLE ${q(reader)} LOGIN CONNECTION LIMIT 3 PASSWORD 'not-copied'; GRANT ${q(appRole)} TO ${q(reader)}`);
    await query(servers.cluster.adminUrl('gl_src'), `CREATE TABLE public.ledger_notes (id int PRIMARY KEY, note text);
      INSERT INTO public.ledger_notes SELECT g, 'note ' || g FROM generate_series(1, 10) g;
      ALTER TABLE public.ledger_notes OWNER TO ${q(appRole)};
      GRANT SELECT ON public.ledger_notes TO ${q(reader)}, gl_src_owner`);
    setup = await testConfig(servers, 'globals', [{ name: 'gl_src', url, production: false, allowForceRestore: true }], { env: { BACKUP_FORMAT: 'parts' } });
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
    taken = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `gl-backup-${Date.now()}`,
      args: [{ database: 'gl_src' }],
    })) as BackupWorkflowResult;
    atBackup = await contentOf(url);
    // As on a new server: the roles are gone (their objects reassigned to the database's owner).
    await dropRoles();
    assert.deepEqual(await roles(), []);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('without --with-globals: the plan names the missing roles, and the restore fails on them saying what to do', async () => {
    const failed = await restore({}).catch((err: unknown) => err);
    assert.ok(failed instanceof Error, 'the restore fails');
    const text = String((failed.cause as Error | undefined)?.cause ?? failed.cause ?? failed);
    assert.match(text, new RegExp(`role "${reader.replace(/"/g, '"')}" does not exist`));
    assert.match(text, /--with-globals/);
    assert.deepEqual(await roles(), [], 'no role was created');
    assert.deepEqual(await contentOf(url), atBackup, 'the target is as it was');
  });

  it('the plan says which roles are missing, before anyone approves', async () => {
    const handle = await client.workflow.start(RESTORE_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `gl-plan-${Date.now()}`,
      args: [{ database: 'gl_src', requestedBy: 'test', backup: taken.backupId, approvalTimeout: '1h' }],
    });
    try {
      const { planQuery } = await import('../../workflows/definitions');
      let plan: RestoreWorkflowResult['plan'] | undefined;
      for (let i = 0; i < 600 && !plan; i++) {
        plan = await handle.query(planQuery).catch(() => undefined);
        if (!plan) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(plan, 'the plan is shown');
      assert.deepEqual(plan.globals, { missingRoles: [appRole, reader].sort(), missingTablespaces: [], createRoles: false });
      assert.match(plan.summary, /do not exist on the target server: .*gl_app_.*add --with-globals/);
    } finally {
      await handle.cancel();
    }
  });

  it('with --with-globals: the roles are created first, as recorded and without password or superuser, and the restore succeeds', async () => {
    const result = await restore({ withGlobals: true });
    assert.equal(result.outcome, 'restored');
    assert.deepEqual(result.plan.globals?.createRoles, true);
    assert.match(result.plan.summary, /will be created first/);
    assert.deepEqual(
      (await roles()).map((r) => ({ ...r })),
      [
        { rolname: appRole, rolcanlogin: false, rolconnlimit: -1, rolsuper: false, rolcreatedb: true, rolpassword: null },
        { rolname: reader, rolcanlogin: true, rolconnlimit: 3, rolsuper: false, rolcreatedb: false, rolpassword: null },
      ].sort((a, b) => (a.rolname < b.rolname ? -1 : 1)),
    );
    const [member] = await query<{ member: boolean; reads: boolean }>(
      servers.cluster.adminUrl('gl_src'),
      `SELECT pg_has_role('${reader.replace(/'/g, "''")}', '${appRole}', 'MEMBER') AS member,
              has_table_privilege('${reader.replace(/'/g, "''")}', 'public.ledger_notes', 'SELECT') AS reads`,
    );
    assert.deepEqual({ ...member }, { member: true, reads: true });
    assert.deepEqual(await contentOf(url), atBackup);
  });

  it('existing roles are left as they are: a second restore creates nothing and alters nothing', async () => {
    await servers.cluster.sql(`ALTER ROLE ${q(reader)} CONNECTION LIMIT 7; REVOKE ${q(appRole)} FROM ${q(reader)}`);
    const result = await restore({ withGlobals: true });
    assert.equal(result.outcome, 'restored');
    assert.deepEqual(result.plan.globals?.missingRoles, []);
    const [r] = (await roles()).filter((x) => x.rolname === reader);
    assert.equal(r!.rolconnlimit, 7, 'attributes untouched');
    const [m] = await query<{ member: boolean }>(servers.cluster.adminUrl(), `SELECT pg_has_role('${reader.replace(/'/g, "''")}', '${appRole}', 'MEMBER') AS member`);
    assert.equal(m!.member, false, 'memberships of an existing role untouched');
  });
});
