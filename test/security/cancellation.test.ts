import { CancelledFailure } from '@temporalio/common';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { keyringFor } from '../../src/crypto/keys';
import { storedObjects } from '../../src/parts/parts-of';
import { waitFor } from '../../src/infra/net';
import { BACKUP_WORKFLOW_TYPE, progressQuery } from '../../workflows/definitions';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';
import { webhookReceiver } from '../harness/webhook-receiver';
import { runWorker, testClient } from '../harness/worker';

/** An S3 endpoint that accepts connections and never answers: a replication to it waits until cancelled. */
async function silentServer(): Promise<{ url: string; connections: () => number; close(): void }> {
  const sockets = new Set<net.Socket>();
  let count = 0;
  const server = net.createServer((s) => {
    count++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => count,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('a backup cancelled while it replicates', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: (() => Promise<void>) | undefined;
  let silent: Awaited<ReturnType<typeof silentServer>>;
  let receiver: Awaited<ReturnType<typeof webhookReceiver>>;

  before(async () => {
    servers = await testServers();
    silent = await silentServer();
    receiver = await webhookReceiver();
    const source = await seededDatabase(servers, 'cx_source', { users: 20, transactions: 300 });
    process.env.LIFELINE_TEST_S3_KEY ??= 'test-key';
    process.env.LIFELINE_TEST_S3_SECRET ??= 'test-secret';
    setup = await testConfig(servers, 'cancel', [{ name: 'cx_source', url: source.url }], {
      destinations: [{ name: 'offsite', type: 's3', bucket: 'cx-offsite', endpoint: silent.url, accessKeyIdEnv: 'LIFELINE_TEST_S3_KEY', secretAccessKeyEnv: 'LIFELINE_TEST_S3_SECRET' }],
      env: { BACKUP_WEBHOOK_URL: receiver.url },
    });
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    silent?.close();
    await stopWorker?.();
    await client?.connection.close();
    receiver?.close();
  });

  it('ends CANCELLED, not completed with a failed replication; says what was kept; nothing half-written remains', { timeout: 120_000 }, async () => {
    const handle = await client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `cx-backup-${Date.now()}`,
      args: [{ database: 'cx_source' }],
    });
    await waitFor('the replication to wait on the silent endpoint', async () => (await handle.query(progressQuery)).phase === 'replicating' && silent.connections() > 0, 60_000);
    const { backupId } = await handle.query(progressQuery);
    await handle.cancel();

    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError, `a failed workflow, got ${String(err)}`);
      assert.ok(err.cause instanceof CancelledFailure, `cancelled, got ${String(err.cause)}`);
      return true;
    });
    assert.equal((await handle.describe()).status.name, 'CANCELLED');

    // The notice says what was reached: the backup is verified and kept, the replication did not happen.
    await waitFor('the cancellation notice', async () => receiver.posts.some((p) => p.lifeline.backupId === backupId && p.lifeline.event === 'backup.cancelled'), 30_000);
    const notices = receiver.posts.filter((p) => p.lifeline.backupId === backupId || p.lifeline.database === 'cx_source');
    assert.deepEqual(notices.map((p) => p.lifeline.event), ['backup.cancelled'], JSON.stringify(notices, null, 2));
    assert.match(notices[0]!.lifeline.text, /verified and catalogued/);
    assert.match(notices[0]!.lifeline.text, /not replicated to offsite/);
    assert.doesNotMatch(notices[0]!.lifeline.title, /FAILED/);

    // The local backup is whole and catalogued; no pending record or temporary file is left.
    const db = setup.config.databases[0]!;
    const manifests = await catalogFor(db).list('cx_source');
    assert.deepEqual(manifests.map((m) => m.id), [backupId]);
    await verifyBackup(localStorageFor(db), manifests[0]!, keyringFor(setup.config));
    const stored = storedObjects(manifests[0]!).map((o) => path.basename(o.key));
    assert.deepEqual(readdirSync(path.join(setup.env.BACKUP_DIR!, 'cx_source')).sort(), [...stored, `${backupId}.manifest.json`].sort());
  });
});
