import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow';
import { dumpToRepository } from '../../src/backup/dump';
import { storedObjects } from '../../src/parts/parts-of';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { backupId, pendingKey } from '../../src/catalog/naming';
import { keyringFor } from '../../src/crypto/keys';
import { waitFor } from '../../src/infra/net';
import { BACKUP_WORKFLOW_TYPE, type BackupWorkflowResult } from '../../workflows/definitions';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

const run = promisify(execFile);
const PAGE = 4096;

/** The last failure of the workflow's pending activity: its type and message, if it failed once. */
async function lastActivityFailure(client: Client, workflowId: string): Promise<{ type?: string; message?: string } | undefined> {
  const d = await client.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId } });
  const failure = d.pendingActivities?.find((a) => a.lastFailure)?.lastFailure;
  // The message travels encrypted (the payload codec): decoded as the client decodes failures.
  const decoded = await decodeOptionalFailureToOptionalError(client.options.loadedDataConverter, failure);
  return failure ? { type: failure.applicationFailureInfo?.type ?? undefined, message: decoded?.message } : undefined;
}

describe('a repository whose disk fills up in the middle of a backup (a small tmpfs as BACKUP_DIR)', () => {
  let setup: TestSetup;
  let client: Client;
  let stopWorker: (() => Promise<void>) | undefined;
  let mounted: string | undefined;
  let notMounted: string | undefined;
  let dataPages = 0;

  before(async () => {
    const servers = await testServers();
    const source = await seededDatabase(servers, 'df_source');
    setup = await testConfig(servers, 'disk-full', [{ name: 'df_source', url: source.url }]);
    const db = setup.config.databases[0]!;
    // How many pages this database's backup takes: dumped once elsewhere.
    const scratch = mkdtempSync(path.join(tmpdir(), 'lifeline-disk-full-size-'));
    const probe = await dumpToRepository(setup.config, { ...db, backupDir: path.join(scratch, db.name) }, { backupId: backupId(db.name, new Date()), type: 'full' });
    rmSync(scratch, { recursive: true, force: true });
    dataPages = Math.ceil(probe.sizes.storedBytes / PAGE);

    const dir = setup.env.BACKUP_DIR!;
    mkdirSync(dir, { recursive: true });
    try {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${(dataPages + 512) * 4}k,mode=0700`, 'tmpfs', dir]);
      mounted = dir;
    } catch (err) {
      notMounted = `cannot mount a tmpfs (needs root): ${(err as Error).message.split('\n')[0]}`;
      return;
    }
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
    if (mounted) await run('umount', ['-l', mounted]);
  });

  it('fails with RepositoryFull naming the path, and completes once space is freed: one catalogued backup, no leftovers', { timeout: 180_000 }, async (t) => {
    if (!mounted) return t.skip(notMounted);
    const dir = mounted;
    const folder = path.join(dir, 'df_source');
    mkdirSync(folder, { recursive: true });
    // Leave exactly the pages the data object needs: nothing for a record written beside it.
    const free = () => statfsSync(dir).bavail;
    writeFileSync(path.join(dir, 'filler'), Buffer.alloc((free() - dataPages) * PAGE));
    assert.equal(free(), dataPages);

    const workflowId = `df-backup-${Date.now()}`;
    const handle = await client.workflow.start(BACKUP_WORKFLOW_TYPE, { taskQueue: setup.config.temporal.taskQueue, workflowId, args: [{ database: 'df_source' }] });
    let failure: { type?: string; message?: string } | undefined;
    await waitFor('the dump to fail for want of space', async () => {
      failure = await lastActivityFailure(client, workflowId);
      if (failure) return true;
      const { status } = await handle.describe();
      if (status.name !== 'RUNNING') assert.fail(`the workflow ended ${status.name} before the dump failed for want of space`);
      return false;
    }, 90_000);
    assert.equal(failure!.type, 'RepositoryFull', failure!.message);
    assert.match(failure!.message!, new RegExp(`cannot write ${folder}/df_source_backup_\\d{8}_\\d{6}\\.(dump\\.zst\\.enc|part\\.[a-z0-9-]+\\.zst\\.enc|pending\\.json)`));
    assert.match(failure!.message!, /free space .* or raise its quota/);

    rmSync(path.join(dir, 'filler'));
    const result = (await handle.result()) as BackupWorkflowResult;

    const db = setup.config.databases[0]!;
    const manifests = await catalogFor(db).list('df_source');
    assert.deepEqual(manifests.map((m) => m.id), [result.backupId]);
    await verifyBackup(localStorageFor(db), manifests[0]!, keyringFor(setup.config));
    const stored = storedObjects(manifests[0]!).map((o) => path.basename(o.key));
    assert.deepEqual(readdirSync(folder).sort(), [...stored, `${result.backupId}.manifest.json`].sort());
  });

  it('a data object left published without its record (the disk filled while the record was written) does not block the retry', { timeout: 120_000 }, async (t) => {
    if (!mounted) return t.skip(notMounted);
    rmSync(path.join(mounted, 'filler'), { force: true });
    const db = setup.config.databases[0]!;
    const storage = localStorageFor(db);
    const id = backupId(db.name, new Date(Date.now() + 3_600_000));
    const owner = { workflowId: 'df-leftover', runId: 'run-1' };
    const first = await dumpToRepository(setup.config, db, { backupId: id, type: 'full', workflow: owner });
    // What a failed record write leaves: the data object and no record of it.
    await storage.delete(pendingKey(db.name, id));
    const again = await dumpToRepository(setup.config, db, { backupId: id, type: 'full', workflow: owner });
    assert.equal(again.object.key, first.object.key);
    await verifyBackup(storage, again, keyringFor(setup.config));
    // Another workflow never takes it over.
    await assert.rejects(dumpToRepository(setup.config, db, { backupId: id, type: 'full', workflow: { workflowId: 'df-other', runId: 'run-2' } }), /already taken by df-leftover/);
  });
});
