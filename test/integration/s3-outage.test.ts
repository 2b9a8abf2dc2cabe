import { ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { storageNamed } from '../../src/backup/repository';
import { Catalog } from '../../src/catalog/catalog';
import { storedObjects } from '../../src/parts/parts-of';
import { waitFor } from '../../src/infra/net';
import { startLocalS3, type LocalS3Server } from '../../src/infra/s3-server';
import { ensureVersitygw } from '../../src/infra/tools';
import { S3Storage } from '../../src/storage/s3';
import { BACKUP_WORKFLOW_TYPE, type BackupWorkflowResult } from '../../workflows/definitions';
import { s3Destination, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { runWorker, testClient } from '../harness/worker';
import { newWorkDir, testServers, type TestServers } from '../harness/servers';

describe('an S3 server that goes away in the middle of an upload', () => {
  let servers: TestServers;
  let s3: LocalS3Server;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;

  before(async () => {
    servers = await testServers();
    // A server of our own, to stop and start.
    s3 = await startLocalS3(await ensureVersitygw(), path.join(newWorkDir('s3-outage'), 's3'));
    const source = await seededDatabase(servers, 'so_source', { users: 20, transactions: 500 });
    // About 80 MiB that no compression shrinks: ten 8 MiB parts to upload.
    await servers.cluster.sql(
      `CREATE TABLE public.attachments (id int PRIMARY KEY, body bytea);
       INSERT INTO public.attachments SELECT g, (SELECT string_agg(sha256((g * 100000 + i)::text::bytea), ''::bytea) FROM generate_series(1, 32768) i) FROM generate_series(1, 80) g;
       ALTER TABLE public.attachments OWNER TO so_source_owner;`,
      'so_source',
    );
    setup = await testConfig(servers, 's3-outage', [{ name: 'so_source', url: source.url }], {
      destinations: [await s3Destination(s3, 'offsite', 'so-offsite')],
    });
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
    await s3?.stop();
  });

  it('completes once the server is back, resuming the upload: every object of the backup, no orphaned multipart upload', async () => {
    const offsite = storageNamed(setup.config, setup.config.databases[0]!, 'offsite') as S3Storage;
    const handle = await client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `so-backup-${Date.now()}`,
      args: [{ database: 'so_source' }],
    });
    // Stop the server once it holds a few parts of the upload.
    let partsAtStop = 0;
    await waitFor('an upload in progress', async () => {
      const uploads = await offsite.client.send(new ListMultipartUploadsCommand({ Bucket: 'so-offsite' })).catch(() => undefined);
      const upload = uploads?.Uploads?.[0];
      if (!upload) return false;
      const parts = await offsite.client.send(new ListPartsCommand({ Bucket: 'so-offsite', Key: upload.Key, UploadId: upload.UploadId })).catch(() => undefined);
      partsAtStop = parts?.Parts?.length ?? 0;
      return partsAtStop >= 2;
    }, 120_000);
    await s3.stop();
    await new Promise((r) => setTimeout(r, 3000));
    await s3.restart();

    const result = (await handle.result()) as BackupWorkflowResult;
    const [replica] = result.replication!;
    assert.equal(replica?.status, 'replicated', replica?.error);
    assert.ok((replica?.partsReused ?? 0) >= 2, `the retry kept the parts the server had (${replica?.partsReused} reused, ${partsAtStop} there at the stop)`);

    const uploads = await offsite.client.send(new ListMultipartUploadsCommand({ Bucket: 'so-offsite' }));
    assert.equal(uploads.Uploads?.length ?? 0, 0, 'no orphaned multipart upload');
    const manifest = await new Catalog(offsite).get(result.backupId);
    const objects = await offsite.client.send(new ListObjectsV2Command({ Bucket: 'so-offsite' }));
    assert.deepEqual(
      // Besides the backup (every part of it, and its manifest), only the audit trail's anchors (`_audit/anchors/…`).
      (objects.Contents ?? []).map((o) => o.Key!).filter((k) => !k.startsWith('_audit/anchors/')).sort(),
      [...storedObjects(manifest).map((o) => o.key), `so_source/${result.backupId}.manifest.json`].sort(),
    );
    assert.ok(storedObjects(manifest).some((o) => o.storedBytes > 70 * 1024 * 1024), 'the attachments table is one part of many upload parts');
    for (const object of storedObjects(manifest)) {
      const hash = createHash('sha256');
      for await (const chunk of await offsite.read(object.key)) hash.update(chunk as Buffer);
      assert.equal(hash.digest('hex'), object.sha256, object.name);
    }
    assert.ok(result.storedBytes > 70 * 1024 * 1024, `big enough to need many parts (${result.storedBytes} bytes)`);
  });
});
