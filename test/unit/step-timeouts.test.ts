import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import { StallWatch } from '../../src/pipeline/stall';
import { configProblems } from '../harness/config-problems';

const load = (env: Record<string, string>) =>
  loadConfig({ cwd: mkdtempSync(path.join(tmpdir(), 'lifeline-timeouts-')), env: { DATABASE_URL: 'postgresql://u@h/db', BACKUP_S3_BUCKET: 'b-offsite', ...env } });

describe('step timeouts', () => {
  it('default to 10 min without progress, 2 min for a lock, 10 s to connect and 2 min of silence from S3 or KMS', () => {
    const config = load({});
    assert.deepEqual(config.timeouts, { stallSeconds: 600, lockWaitSeconds: 120, network: { connectSeconds: 10, idleSeconds: 120 } });
    assert.deepEqual(config.encryption.kms.network, config.timeouts.network);
    const offsite = config.destinations.find((d) => d.name === 'offsite');
    assert.ok(offsite?.kind === 's3');
    assert.deepEqual(offsite.network, config.timeouts.network);
  });

  it('take seconds or a unit', () => {
    const config = load({ BACKUP_STALL_TIMEOUT: '15m', BACKUP_LOCK_WAIT_TIMEOUT: '90', BACKUP_CONNECT_TIMEOUT: '5s', BACKUP_REQUEST_TIMEOUT: '1h' });
    assert.deepEqual(config.timeouts, { stallSeconds: 900, lockWaitSeconds: 90, network: { connectSeconds: 5, idleSeconds: 3600 } });
  });

  it('refuse a value that is not a duration in range, naming the variable and what is allowed', () => {
    const found = configProblems(() => load({ BACKUP_STALL_TIMEOUT: 'soon', BACKUP_LOCK_WAIT_TIMEOUT: '0', BACKUP_REQUEST_TIMEOUT: '-5s' }));
    assert.ok(found.some((p) => p.startsWith('BACKUP_STALL_TIMEOUT = "soon": must be a duration from 5 s to 86400 s: seconds (600) or with a unit (600s, 10m, 1h)')), found.join('\n'));
    assert.ok(found.some((p) => p.startsWith('BACKUP_LOCK_WAIT_TIMEOUT = "0": must be a duration from 1 s')), found.join('\n'));
    assert.ok(found.some((p) => p.startsWith('BACKUP_REQUEST_TIMEOUT = "-5s": must be a duration')), found.join('\n'));
  });
});

describe('StallWatch', () => {
  it('heartbeats while the count moves or the server is busy, and aborts with Stalled once nothing moves', async () => {
    let count = 0;
    let alive = 0;
    let busyAnswers = 1;
    const watch = new StallWatch({
      what: 'the test step',
      stallSeconds: 0.3,
      progress: () => count,
      onAlive: () => alive++,
      diagnose: async () => (busyAnswers-- > 0 ? { busy: 'a query runs' } : { waitsOn: 'a lock on public.t' }),
      tickMs: 20,
    });
    const mover = setInterval(() => count++, 50);
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(mover);
    assert.equal(watch.signal.aborted, false, 'moving: not stalled');
    const before = alive;
    await new Promise<void>((resolve) => watch.signal.addEventListener('abort', () => resolve()));
    watch.stop();
    assert.ok(alive > before, 'a busy server counted as progress first');
    assert.equal(watch.stalled?.code, 'Stalled');
    assert.equal(watch.stalled?.retryable, true);
    assert.match(watch.stalled!.message, /^the test step made no progress for 0\.3 s \(BACKUP_STALL_TIMEOUT\): it waits on a lock on public\.t$/);
  });
});
