import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AuditLog } from '../../src/audit/audit-log';

async function logWith(n: number): Promise<AuditLog> {
  const log = new AuditLog(path.join(mkdtempSync(path.join(tmpdir(), 'lifeline-audit-')), 'audit.jsonl'));
  for (let i = 1; i <= n; i++) {
    await log.append({ eventId: `e${i}`, actor: i % 2 ? 'schedule' : 'alice', action: 'backup', status: 'verified', database: 'moneyflow', backupId: `moneyflow_backup_2026110${i}_030000`, sizeBytes: 1000 + i });
  }
  return log;
}

describe('audit log (hash chain)', () => {
  it('chains every entry to the one before it and verifies', async () => {
    const log = await logWith(5);
    const entries = await log.entries();
    assert.deepEqual(entries.map((e) => e.seq), [1, 2, 3, 4, 5]);
    for (let i = 1; i < entries.length; i++) assert.equal(entries[i]!.prevHash, entries[i - 1]!.hash);
    assert.deepEqual(await log.verify(), { ok: true, entries: 5, lastHash: entries[4]!.hash });
  });

  it('writes a retried event once', async () => {
    const log = await logWith(3);
    const again = await log.append({ eventId: 'e2', actor: 'alice', action: 'backup', status: 'verified' });
    assert.equal(again.seq, 2);
    assert.equal((await log.entries()).length, 3);
  });

  it('names the line that was edited', async () => {
    const log = await logWith(5);
    const lines = readFileSync(log.file, 'utf8').split('\n');
    lines[2] = lines[2]!.replace('"sizeBytes":1003', '"sizeBytes":9999');
    writeFileSync(log.file, lines.join('\n'));
    const check = await log.verify();
    assert.equal(check.ok, false);
    assert.deepEqual(check.broken, { line: 3, reason: 'its content does not match its hash: the line was edited' });
  });

  it('names the line after one that was removed', async () => {
    const log = await logWith(5);
    const lines = readFileSync(log.file, 'utf8').split('\n');
    lines.splice(1, 1);
    writeFileSync(log.file, lines.join('\n'));
    const check = await log.verify();
    assert.equal(check.broken?.line, 2);
    assert.match(check.broken!.reason, /removed, inserted or reordered/);
  });

  it('keeps the chain under concurrent appends', async () => {
    const log = await logWith(0);
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.append({ eventId: `c${i}`, actor: 'schedule', action: 'backup', status: 'verified' })));
    assert.deepEqual(await log.verify().then((c) => [c.ok, c.entries]), [true, 20]);
  });
});
