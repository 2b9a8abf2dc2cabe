/**
 * The audit trail rewritten by deleting it together with its key file (red team). The next audited
 * action would find no log and no audit-key.json and make a fresh audit key, starting a new chain
 * at seq 1. The old chain's offsite anchors (Object Lock, never removable) outlive the repository:
 * no new key is made over them, and a chain started anyway (a key made while no destination was
 * configured) fails `audit verify`, and its anchor writes are reported as tampering.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { auditKeyFile, auditKeySource } from '../../src/audit/audit-key';
import { AuditLog, auditLogFile } from '../../src/audit/audit-log';
import type { LifelineConfig } from '../../src/config/config';
import { keyringFor } from '../../src/crypto/keys';
import { createKeyFile } from '../../src/crypto/keys/local-key-file';
import { LocalStorage } from '../../src/storage/local';
import type { BackupStorage } from '../../src/storage/storage';

async function installation() {
  const dir = mkdtempSync(path.join(tmpdir(), 'audit-lost-'));
  const keyFile = path.join(dir, 'master.key');
  await createKeyFile(keyFile);
  const config = { backupDir: path.join(dir, 'repo'), encryption: { keyFile, cipher: 'aes-256-gcm', kms: {} } } as unknown as LifelineConfig;
  const offsite = new LocalStorage('offsite', path.join(dir, 'offsite')); // stands for the Object Lock bucket
  const file = auditLogFile(config.backupDir);
  const tampering: string[] = [];
  const open = (stores: BackupStorage[] = [offsite]) =>
    new AuditLog(file, auditKeySource(auditKeyFile(file), keyringFor(config)), stores, async (_f, head) => void tampering.push(`seq ${head.seq}`));
  const log = open();
  for (let i = 1; i <= 5; i++) await log.append({ eventId: `e${i}`, action: 'restore', actor: 'mallory', database: 'moneyflow', status: 'ok' });
  assert.equal((await open().verify()).ok, true);
  // The attacker (write access to the repository only) removes the log and its key file.
  const eraseHistory = () => {
    rmSync(file);
    rmSync(auditKeyFile(file));
  };
  return { file, offsite, open, tampering, eraseHistory };
}

const tonightsBackup = { eventId: 'after', action: 'backup', actor: 'schedule', database: 'moneyflow', status: 'ok' };

describe('audit log and audit key deleted together', () => {
  it('no new audit key is made while the offsite anchors remember the old chain', async () => {
    const at = await installation();
    at.eraseHistory();
    await assert.rejects(at.open().append(tonightsBackup), (err: Error & { code?: string; hint?: string }) => {
      assert.equal(err.code, 'AuditHistoryMissing');
      assert.match(err.message, /offsite holds 5 anchor\(s\), seq 1–5 .* under audit key [0-9a-f]{16}/);
      assert.match(err.hint ?? '', /restore audit\.jsonl and audit-key\.json/);
      return true;
    });
    // Nothing was written: the operator can still restore both files.
    assert.equal((await at.open().entries()).length, 0);
    const check = await at.open().verify();
    assert.equal(check.ok, false);
    assert.match(check.broken!.reason, /seq 1–5 missing/);
  });

  it('a chain started anyway (no destination configured then) fails verify, and its anchor writes are reported as tampering', async () => {
    const at = await installation();
    at.eraseHistory();
    // The next audited action runs where the offsite destination is not configured: a fresh key, a new chain at seq 1.
    await at.open([]).append(tonightsBackup);
    const check = await at.open().verify();
    assert.equal(check.ok, false, `audit verify says intact; warnings only: ${JSON.stringify(check.warnings)}`);
    assert.equal(check.broken?.line, 1);
    assert.match(check.broken!.reason, /offsite holds 5 anchor\(s\), seq 1–5 .* under audit key [0-9a-f]{16}, but this log is keyed with audit key [0-9a-f]{16}/);

    // With the destination back, the next append goes through but its seq is taken offsite: reported.
    const recorded = await at.open().record({ ...tonightsBackup, eventId: 'next' });
    assert.equal(recorded.entry.seq, 2);
    assert.equal(recorded.anchors.failed[0]?.tampered, true);
    assert.match(recorded.anchors.failed[0]!.error, /already anchors seq 2 with another MAC under another audit key/);
    assert.deepEqual(at.tampering, ['seq 2']);
  });

  it('`audit reset --confirm-lost-history` starts a new chain only over a lost one, records the loss offsite, and verify names it', async () => {
    const at = await installation();
    await assert.rejects(at.open().reset('alice'), { code: 'AuditResetRefused', message: /is not empty/ });
    at.eraseHistory();
    const { entry, lost } = await at.open().reset('alice');
    assert.equal(entry.action, 'audit.reset');
    assert.equal(entry.seq, 1);
    assert.deepEqual(lost.map((c) => [c.fromSeq, c.toSeq]), [[1, 5]]);
    const recorded = await at.open().record(tonightsBackup);
    assert.deepEqual([recorded.anchors.written, recorded.anchors.failed, at.tampering], [['offsite'], [], []]);
    const check = await at.open().verify();
    assert.equal(check.ok, true, JSON.stringify(check.broken));
    assert.equal(check.anchors[0]?.checked, 2);
    assert.match(check.warnings.join('\n'), /offsite holds 5 anchor\(s\), seq 1–5 .*: history declared lost by `lifeline audit reset` \(alice, /);

    // The new chain is protected the same way: erased again, no key is made over it, and no planted reset excuses it.
    at.eraseHistory();
    await assert.rejects(at.open().append({ ...tonightsBackup, eventId: 'later' }), { code: 'AuditHistoryMissing' });
    await at.open([]).append({ ...tonightsBackup, eventId: 'later' });
    const again = await at.open().verify();
    assert.equal(again.ok, false);
    assert.match(again.broken!.reason, /under audit key/);
  });

  it('without an offsite destination, verify says that no offsite anchor exists and what else holds the head', async () => {
    const at = await installation();
    const check = await at.open([]).verify();
    assert.equal(check.ok, true);
    assert.match(check.warnings.join('\n'), /no offsite destination is configured, so no offsite anchor exists.*--temporal-days/);
  });
});
