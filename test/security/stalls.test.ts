/**
 * Stalls that look like progress: a dump that waits forever must fail, retryably and soon, saying
 * what it waits on; heartbeats come from bytes that move, not from a timer.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import pg from 'pg';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRestoreActivities } from '../../activities/restore';
import { catalogBackup } from '../../src/backup/catalog-backup';
import { dumpToRepository } from '../../src/backup/dump';
import { localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { keyringFor } from '../../src/crypto/keys';
import { waitFor } from '../../src/infra/net';
import { backupId } from '../../src/catalog/naming';
import type { DatabaseConfig, LifelineConfig } from '../../src/config/config';
import type { RestoreVerification } from '../../workflows/definitions';
import { LifelineError } from '../../src/errors';
import { pgBinDir } from '../../src/postgres/binaries';
import { seededDatabase, testConfig } from '../harness/fixtures';
import { newWorkDir, testServers, type TestServers } from '../harness/servers';

/** Files under a folder, recursively, relative to it. */
function filesUnder(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.relative(dir, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)));
  } catch {
    return [];
  }
}

/** Runs `fn`, failing the test (instead of hanging it) if it takes longer than `limitMs`. */
async function within<T>(limitMs: number, what: string, fn: () => Promise<T>): Promise<{ value?: T; error?: unknown; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${limitMs / 1000} s`)), limitMs);
  });
  try {
    const value = await Promise.race([fn(), hung]);
    return { value, ms: Date.now() - started };
  } catch (error) {
    if (error instanceof Error && error.message.startsWith(`${what}: still waiting`)) throw error;
    return { error, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

describe('stalls and faults that look like progress', () => {
  let servers: TestServers;
  let config: LifelineConfig;
  let db: DatabaseConfig;

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'st_source', { users: 20, transactions: 300 });
    const setup = await testConfig(servers, 'stalls', [{ name: 'st_source', url: source.url }], {
      env: { BACKUP_STALL_TIMEOUT: '5s', BACKUP_LOCK_WAIT_TIMEOUT: '2s' },
    });
    config = setup.config;
    db = config.databases[0]!;
  });

  it('a table locked by another session fails the dump quickly with a retryable LockTimeout naming it; the retry succeeds once released', { timeout: 180_000 }, async () => {
    const holder = new pg.Client({ connectionString: servers.cluster.adminUrl('st_source'), application_name: 'migration-in-progress' });
    await holder.connect();
    const id = backupId(db.name, new Date());
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE public.accounts IN ACCESS EXCLUSIVE MODE');
      const { error, ms } = await within(60_000, 'the dump of a locked database', () => dumpToRepository(config, db, { backupId: id, type: 'full' }));
      assert.ok(error instanceof LifelineError, `a LifelineError, not ${String(error)}`);
      assert.equal(error.code, 'LockTimeout', error.message);
      assert.equal(error.retryable, true);
      assert.ok(ms < 30_000, `gave up after ${ms} ms (lock wait timeout 2 s)`);
      assert.match(error.message, /public\.accounts is locked \(AccessExclusiveLock\) by pid \d+/);
      assert.match(error.message, /application migration-in-progress/);
      assert.match(error.message, /BACKUP_LOCK_WAIT_TIMEOUT/);
      // The id's claim (.pending.json) stays for the retry; no data, finished or not.
      assert.deepEqual(filesUnder(db.backupDir).filter((f) => !f.endsWith('.pending.json')), [], 'no data left in the repository');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
    const record = await dumpToRepository(config, db, { backupId: id, type: 'full' });
    assert.ok(record.tables.some((t) => t.name === 'accounts' && t.rows > 0));
  });

  describe('verifying a restore that takes longer than the 30 s heartbeat timeout', () => {
    let verifyConfig: LifelineConfig;
    let ref: { database: string; backupId: string; target: string };
    const heartbeats: number[] = [];
    const run = (tables: string[]) => {
      const env = new MockActivityEnvironment();
      env.on('heartbeat', () => heartbeats.push(Date.now()));
      return env.run(createRestoreActivities(verifyConfig).verifyRestored, ref, undefined, tables, false);
    };

    before(async () => {
      const source = await seededDatabase(servers, 'st_verify', { users: 20, transactions: 300 });
      // A check that runs 12 s: more than twice the stall timeout, with nothing to count meanwhile.
      const setup = await testConfig(servers, 'stalls-verify', [{ name: 'st_verify', url: source.url, production: false, restoreChecks: { sql: ['SELECT pg_sleep(12) IS NOT NULL'] } }], {
        env: { BACKUP_STALL_TIMEOUT: '5s' },
      });
      verifyConfig = setup.config;
      const vdb = verifyConfig.databases[0]!;
      const record = await dumpToRepository(verifyConfig, vdb, { backupId: backupId(vdb.name, new Date()), type: 'full' });
      const { verification } = await verifyBackup(localStorageFor(vdb), record, keyringFor(verifyConfig));
      await catalogBackup(vdb, record, verification, 'test', keyringFor(verifyConfig));
      ref = { database: vdb.name, backupId: record.id, target: vdb.name };
    });

    it('heartbeats per table and while the server works on a long check, and passes', { timeout: 120_000 }, async () => {
      heartbeats.length = 0;
      const started = Date.now();
      const result = (await run(['public.accounts', 'public.users'])) as RestoreVerification;
      assert.equal(result.checks.length, 1);
      assert.ok(result.checks[0]!.ok);
      const beats = [started, ...heartbeats, Date.now()];
      const longestSilence = Math.max(...beats.slice(1).map((t, i) => t - beats[i]!));
      assert.ok(heartbeats.length >= 4, `${heartbeats.length} heartbeats in ${Date.now() - started} ms`);
      assert.ok(longestSilence < 10_000, `no heartbeat for ${longestSilence} ms (Temporal's heartbeat timeout is 30 s)`);
    });

    it('a table locked during the verification fails it with Stalled naming the lock, and cancels its query', { timeout: 120_000 }, async () => {
      const holder = new pg.Client({ connectionString: servers.cluster.adminUrl('st_verify'), application_name: 'verify-blocker' });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE');
        const { error, ms } = await within(60_000, 'a verification blocked by a lock', () => run(['public.accounts', 'public.users']));
        const failure = error as { type?: string; message?: string; nonRetryable?: boolean };
        assert.equal(failure?.type, 'Stalled', String(failure?.message));
        assert.equal(failure.nonRetryable, false);
        assert.ok(ms < 40_000, `stalled after ${ms} ms`);
        assert.match(String(failure.message), /made no progress for 5 s \(BACKUP_STALL_TIMEOUT\): it waits on a lock on public\.users in 127\.0\.0\.1:\d+\/st_verify, held by pid \d+ \(user postgres, application verify-blocker/);
        // The blocked count was cancelled, not left waiting behind the lock.
        await waitFor('the blocked count to be cancelled', async () => (await servers.cluster.sql(`SELECT 1 FROM pg_stat_activity WHERE datname = 'st_verify' AND wait_event_type = 'Lock'`)).length === 0, 20_000);
      } finally {
        await holder.query('ROLLBACK').catch(() => undefined);
        await holder.end();
      }
    });
  });

  it('a pg_dump that neither exits nor writes fails with Stalled within BACKUP_STALL_TIMEOUT and is killed', { timeout: 180_000 }, async () => {
    // A pg_dump that answers --version and then sits silent, as one stuck on a dead network would.
    const bin = path.join(newWorkDir('stalled-bin'), 'bin');
    mkdirSync(bin);
    const real = pgBinDir();
    for (const tool of ['pg_restore', 'psql']) symlinkSync(path.join(real, tool), path.join(bin, tool));
    writeFileSync(path.join(bin, 'pg_dump'), `#!/bin/sh\nif [ "$1" = "--version" ]; then exec "${path.join(real, 'pg_dump')}" --version; fi\nexec sleep 987654\n`);
    chmodSync(path.join(bin, 'pg_dump'), 0o755);
    const previous = process.env.LIFELINE_PG_BIN;
    process.env.LIFELINE_PG_BIN = bin;
    const id = backupId(db.name, new Date(Date.now() + 60_000));
    try {
      const { error, ms } = await within(90_000, 'a dump from a silent pg_dump', () => dumpToRepository(config, db, { backupId: id, type: 'full' }));
      assert.ok(error instanceof LifelineError, `a LifelineError, not ${String(error)}`);
      assert.equal(error.code, 'Stalled', error.message);
      assert.equal(error.retryable, true);
      assert.ok(ms >= 5000 && ms < 40_000, `stalled after ${ms} ms (BACKUP_STALL_TIMEOUT 5 s)`);
      assert.match(error.message, /made no progress for 5 s \(BACKUP_STALL_TIMEOUT\): it waits on pg_dump, which has no session on 127\.0\.0\.1:\d+\/st_source/);
    } finally {
      if (previous === undefined) delete process.env.LIFELINE_PG_BIN;
      else process.env.LIFELINE_PG_BIN = previous;
    }
    const left = (() => {
      try {
        return execFileSync('pgrep', ['-f', 'sleep 987654'], { encoding: 'utf8' }).trim();
      } catch {
        return '';
      }
    })();
    if (left) for (const pid of left.split('\n')) process.kill(Number(pid), 'SIGKILL');
    assert.equal(left, '', 'the silent pg_dump was killed');
    assert.deepEqual(filesUnder(db.backupDir).filter((f) => f.includes(id) && !f.endsWith('.pending.json')), [], 'no data of the stalled dump left in the repository');
  });
});
