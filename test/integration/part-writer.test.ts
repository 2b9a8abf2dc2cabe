/**
 * A table part's COPY is sent when its source is made, before PartWriter.write() has its temporary
 * object and its pipeline: what the COPY meets in between (the server's error, its session closed by a
 * cancelled or failed dump) must fail that part, never crash the worker with an error nobody hears.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { closeSession, copyOut } from '../../src/parts/copy-out';
import { PartWriter } from '../../src/parts/write-part';
import { LocalStorage } from '../../src/storage/local';
import type { BackupStorage } from '../../src/storage/storage';
import { testServers, type TestServers } from '../harness/servers';

/** Uncaught errors while `fn` and a short wait after it run (node:test would pin them on whichever test runs). */
async function uncaughtDuring(fn: () => Promise<void>): Promise<Error[]> {
  const seen: Error[] = [];
  const listener = (err: Error) => seen.push(err);
  const listeners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', listener);
  try {
    await fn();
    await sleep(300);
  } finally {
    process.removeListener('uncaughtException', listener);
    for (const l of listeners) process.on('uncaughtException', l);
  }
  return seen;
}

describe('a table part whose COPY runs before its pipeline does', () => {
  let servers: TestServers;
  let dir: string;
  let storage: BackupStorage;
  const writer = (store: BackupStorage) =>
    new PartWriter({ storage: store, key: 'db/x.part.t1-0000.zst.enc', backupId: 'x', name: 't1-0000', dataKey: randomBytes(32), compression: { algorithm: 'zstd', level: 3, threads: 1 } });
  const session = async () => {
    const client = new pg.Client({ connectionString: servers.cluster.adminUrl('postgres') });
    await client.connect();
    return { client };
  };

  before(async () => {
    servers = await testServers();
    dir = mkdtempSync(path.join(tmpdir(), 'lifeline-part-writer-'));
    storage = new LocalStorage('local', dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('fails with the server error when the COPY fails before the temporary object is open', async () => {
    const s = await session();
    // The object opens only once the server has answered the COPY with its error.
    const slow: BackupStorage = Object.create(storage, { createWriter: { value: async (key: string) => (await sleep(300), storage.createWriter(key)) } });
    let failure: unknown;
    const uncaught = await uncaughtDuring(async () => {
      failure = await writer(slow).write([copyOut(s, 'COPY (SELECT 1/0) TO STDOUT')], new AbortController().signal).catch((err: unknown) => err);
    });
    await s.client.end();
    assert.deepEqual(uncaught.map((e) => e.message), []);
    assert.match(String(failure), /division by zero/);
  });

  it('closes a COPY the pipeline never took over: its session closed later crashes nothing', async () => {
    const s = await session();
    const cancelled = new AbortController();
    cancelled.abort();
    const uncaught = await uncaughtDuring(async () => {
      await assert.rejects(writer(storage).write([copyOut(s, 'COPY (SELECT pg_sleep(0.2)) TO STDOUT')], cancelled.signal), { name: 'AbortError' });
      closeSession(s, { now: true });
    });
    assert.deepEqual(uncaught.map((e) => e.message), []);
  });
});
