/**
 * Issue 10, item 6: a table restore commits only after the whole backup is authenticated and its
 * SHA-256 matches the manifest. pg_restore has the selected table long before the end of the file;
 * a damaged last byte must still leave the table as it was.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { openSync, closeSync, fstatSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { localStorageFor } from '../../src/backup/repository';
import { Catalog } from '../../src/catalog/catalog';
import { findDatabase } from '../../src/config/config';
import { waitFor } from '../../src/infra/net';
import { restoreTables } from '../../src/restore/tables';
import { BACKUP_WORKFLOW_TYPE, type BackupWorkflowResult } from '../../workflows/definitions';
import { contentOf } from '../harness/compare';
import { query, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

/** Flips every bit of a file's last byte, in place. */
function flipLastByte(file: string): void {
  const fd = openSync(file, 'r+');
  try {
    const at = fstatSync(fd).size - 1;
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, at);
    byte[0] = byte[0]! ^ 0xff;
    writeSync(fd, byte, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

describe('a table restore commits only once the whole backup is proven', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let url: string;

  before(async () => {
    servers = await testServers();
    ({ url } = await seededDatabase(servers, 'ta_source', { users: 40, transactions: 500 }));
    await servers.cluster.sql('GRANT SET ON PARAMETER session_replication_role TO ta_source_owner');
    // Incompressible rows after public.users in the archive: its data ends chunks before the file does.
    await query(url, `CREATE TABLE public.zz_filler (id int PRIMARY KEY, v text);
      INSERT INTO public.zz_filler SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 4) i) FROM generate_series(1, 30000) g`);
    setup = await testConfig(servers, 'table-auth', [{ name: 'ta_source', url, production: false, allowForceRestore: true }]);
    client = await testClient(servers);
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('a flipped last byte fails the restore and leaves the table as it was', async () => {
    const taken = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `ta-backup-${Date.now()}`,
      args: [{ database: 'ta_source' }],
    })) as BackupWorkflowResult;
    const db = findDatabase(setup.config, 'ta_source');
    const storage = localStorageFor(db);
    const manifest = await new Catalog(storage).get(taken.backupId);
    assert.ok(manifest.sizes.storedBytes > 2 * manifest.encryption.chunkBytes, 'the backup spans several chunks');

    await query(url, `UPDATE public.users SET full_name = 'changed after the backup'`);
    const before = await contentOf(url);
    flipLastByte(path.join(db.backupDir, manifest.object.key));

    // The file's tail arrives late, as from a slow disk or network: only once the rows are loaded
    // and psql waits (or has already committed, which is the bug).
    const loadedOrCommitted = async () => {
      const [s] = await query<{ waiting: boolean; changed: boolean }>(
        servers.cluster.adminUrl('ta_source'),
        `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = 'ta_source' AND application_name = 'psql' AND state = 'idle in transaction') AS waiting,
                EXISTS (SELECT 1 FROM public.users WHERE full_name <> 'changed after the backup') AS changed`,
      );
      return s!.waiting || s!.changed;
    };
    const slowTail = Object.create(storage, {
      read: {
        value: async (key: string) => {
          const whole = await storage.read(key);
          return Readable.from(
            (async function* () {
              const chunks: Buffer[] = [];
              for await (const chunk of whole) chunks.push(chunk as Buffer);
              const all = Buffer.concat(chunks);
              yield all.subarray(0, all.length - 4096);
              await waitFor('the rows to be loaded', loadedOrCommitted, 60_000).catch(() => undefined);
              yield all.subarray(all.length - 4096);
            })(),
          );
        },
      },
    }) as typeof storage;

    await assert.rejects(restoreTables(setup.config, { storage: slowTail, manifest, target: db, tables: ['public.users'] }), (err: Error) => {
      assert.match(err.message, /authentic|differs|SHA-256/i);
      return true;
    });
    assert.deepEqual(await contentOf(url), before, 'public.users is unchanged');
    const [row] = await query<{ n: string }>(url, `SELECT count(*) AS n FROM public.users WHERE full_name = 'changed after the backup'`);
    assert.equal(Number(row!.n), 40);
  });
});
