/**
 * Issue 10, item 6, and issue 11: a table restore commits only after everything it read is
 * authenticated and matches the manifest's SHA-256s. A parts backup's restore reads the table's own
 * parts; a single-stream backup's reads the whole file. Either way the rows are loaded long before
 * the last byte arrives, and a damaged last byte must still leave the tables as they were.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { openSync, closeSync, fstatSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { localStorageFor } from '../../src/backup/repository';
import { Catalog } from '../../src/catalog/catalog';
import type { Manifest } from '../../src/catalog/manifest';
import { findDatabase } from '../../src/config/config';
import { waitFor } from '../../src/infra/net';
import { isParts, partObjectKeyOf, partsOfTable } from '../../src/parts/parts-of';
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

const APP = 'lifeline-ta-test';

for (const format of ['parts', 'stream'] as const) {
  describe(`a table restore commits only once what it read is proven (${format} backup)`, () => {
    let servers: TestServers;
    let setup: TestSetup;
    let client: Client;
    let stopWorker: () => Promise<void>;
    let url: string;
    const database = `ta_${format}`;

    before(async () => {
      servers = await testServers();
      ({ url } = await seededDatabase(servers, database, { users: 40, transactions: 500 }));
      await servers.cluster.sql(`GRANT SET ON PARAMETER session_replication_role TO ${database}_owner`);
      // Incompressible rows after public.users: their data ends chunks before the object does.
      await query(url, `CREATE TABLE public.zz_filler (id int PRIMARY KEY, v text);
        INSERT INTO public.zz_filler SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 4) i) FROM generate_series(1, 30000) g`);
      setup = await testConfig(servers, `table-auth-${format}`, [{ name: database, url, production: false, allowForceRestore: true }], { env: { BACKUP_FORMAT: format } });
      client = await testClient(servers, setup.config);
      stopWorker = await runWorker(setup.config);
    });

    after(async () => {
      await stopWorker?.();
      await client?.connection.close();
    });

    it('a flipped last byte fails the restore and leaves the tables as they were', async () => {
      const taken = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
        taskQueue: setup.config.temporal.taskQueue,
        workflowId: `ta-backup-${format}-${Date.now()}`,
        args: [{ database }],
      })) as BackupWorkflowResult;
      const db = findDatabase(setup.config, database);
      const storage = localStorageFor(db);
      const manifest: Manifest = await new Catalog(storage).get(taken.backupId);
      assert.equal(isParts(manifest), format === 'parts');
      const filler = manifest.tables.find((t) => t.schema === 'public' && t.name === 'zz_filler')!;
      // The object whose last byte is damaged: the filler table's own (last) part, or the whole stream.
      const attacked = format === 'parts' ? partObjectKeyOf(manifest, partsOfTable(manifest, filler.oid!).at(-1)!) : manifest.object.key;
      const attackedBytes = format === 'parts' ? partsOfTable(manifest, filler.oid!).at(-1)!.storedBytes : manifest.sizes.storedBytes;
      assert.ok(attackedBytes > 2 * manifest.encryption.chunkBytes, 'the attacked object spans several chunks');

      await query(url, `UPDATE public.users SET full_name = 'changed after the backup'; UPDATE public.zz_filler SET v = 'changed after the backup'`);
      const before = await contentOf(url);
      flipLastByte(path.join(db.backupDir, attacked));

      // The object's tail arrives late, as from a slow disk or network: only once the rows are
      // loaded and the restoring session waits for more (or has already committed, which is the bug).
      const loadedOrCommitted = async () => {
        const [s] = await query<{ waiting: boolean; changed: boolean }>(
          servers.cluster.adminUrl(database),
          `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = '${database}' AND application_name = '${APP}'
                            AND (state = 'idle in transaction' OR (state = 'active' AND query LIKE 'COPY %'))) AS waiting,
                  EXISTS (SELECT 1 FROM public.users WHERE full_name <> 'changed after the backup') AS changed`,
        );
        return s!.waiting || s!.changed;
      };
      const read: string[] = [];
      const slowTail = Object.create(storage, {
        read: {
          value: async (key: string) => {
            read.push(key);
            const whole = await storage.read(key);
            if (key !== attacked) return whole;
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

      await assert.rejects(
        restoreTables(setup.config, { storage: slowTail, manifest, target: db, tables: ['public.users', 'public.zz_filler'], applicationName: APP }),
        (err: Error) => {
          assert.match(err.message, /authentic|differs|SHA-256/i);
          if (format === 'parts') assert.match(err.message, new RegExp(`part t${filler.oid}-\\d{4} of backup ${manifest.id}`), 'names the damaged part');
          return true;
        },
      );
      assert.ok(read.includes(attacked), 'the attacked object was read');
      assert.deepEqual(await contentOf(url), before, 'public.users and public.zz_filler are unchanged');
      const [row] = await query<{ n: string }>(url, `SELECT count(*) AS n FROM public.users WHERE full_name = 'changed after the backup'`);
      assert.equal(Number(row!.n), 40);
      if (format === 'parts') {
        const users = manifest.tables.find((t) => t.schema === 'public' && t.name === 'users')!;
        const wanted = new Set([...partsOfTable(manifest, users.oid!), ...partsOfTable(manifest, filler.oid!)].map((p) => partObjectKeyOf(manifest, p)));
        assert.deepEqual(read.filter((k) => !wanted.has(k)), [], 'only the two tables\' parts were read');
      }
    });
  });
}
