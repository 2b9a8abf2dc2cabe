import { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { keyProviderFor } from '../../src/crypto/keys';
import { waitFor } from '../../src/infra/net';
import { connectTemporal } from '../../src/temporal/client';
import { stopProcess } from '../../src/infra/temporal-dev-server';
import { BACKUP_WORKFLOW_TYPE, BackupDatabase, type BackupWorkflowResult } from '../../workflows/definitions';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';

const root = path.resolve(__dirname, '..', '..');

/** A real `lifeline worker` process, so that it can really be killed. Its configuration is all in env. */
function startWorker(setup: TestSetup): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'worker'], {
    cwd: root,
    env: { ...process.env, ...setup.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

describe('a worker killed in the middle of a dump', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let locker: pg.Client | undefined;
  const workers: ChildProcess[] = [];

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'it_crash');
    setup = await testConfig(servers, 'crash', [{ name: 'it_crash', url: source.url }]);
    client = new Client({ connection: await connectTemporal(servers.temporalAddress) });
  });

  after(async () => {
    await locker?.end().catch(() => undefined);
    for (const w of workers) await stopProcess(w, 2000);
    await client?.connection.close();
  });

  it('is replaced by another worker; the backup completes once, with no partial file left', { timeout: 180_000 }, async () => {
    // Hold pg_dump inside the dump: a table it must read is locked until we let go.
    locker = new pg.Client({ connectionString: servers.cluster.adminUrl('it_crash') });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE');

    const first = startWorker(setup);
    workers.push(first);
    const handle = await client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `it-crash-${Date.now()}`,
      args: [{ database: 'it_crash' }],
      typedSearchAttributes: [{ key: BackupDatabase, value: 'it_crash' }],
    });

    const folder = path.join(setup.env.BACKUP_DIR!, 'it_crash');
    const partials = () => {
      try {
        return readdirSync(folder).filter((f) => f.endsWith('.partial'));
      } catch {
        return [];
      }
    };
    await waitFor('the dump to be under way', async () => partials().length > 0, 60_000);
    const dumping = await locker.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'it_crash' AND wait_event_type = 'Lock'`);
    assert.ok(dumping.rows[0].n >= 1, 'pg_dump or the row count is waiting on the lock');

    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    workers.push(startWorker(setup));
    await locker.query('COMMIT');
    await locker.end();
    locker = undefined;

    const result = (await handle.result()) as BackupWorkflowResult;
    const history = await handle.fetchHistory();
    const dumpAttempts = history.events!.filter((e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.attempt! > 1);
    assert.ok(dumpAttempts.length >= 1, 'the dump ran again on the new worker');

    const db = setup.config.databases[0]!;
    const manifests = await catalogFor(db).list('it_crash');
    assert.deepEqual(manifests.map((m) => m.id), [result.backupId]);
    const files = readdirSync(folder).sort();
    assert.deepEqual(files, [`${result.backupId}.dump.zst.enc`, `${result.backupId}.manifest.json`]);
    await verifyBackup(localStorageFor(db), manifests[0]!, keyProviderFor(setup.config));
  });
});
