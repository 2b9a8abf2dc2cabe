import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { anchorKey } from '../../src/audit/anchors';
import { AUDIT_KEY_CONTEXT, auditKeyFile, auditKeySource, readAuditKeyFile } from '../../src/audit/audit-key';
import { AuditLog, GENESIS_HASH } from '../../src/audit/audit-log';
import type { LifelineConfig } from '../../src/config/config';
import { keyringFor, type Keyring } from '../../src/crypto/keys';
import { createKeyFile, LocalKeyFileProvider } from '../../src/crypto/keys/local-key-file';
import { LocalStorage } from '../../src/storage/local';
import type { BackupStorage } from '../../src/storage/storage';

interface Installation {
  dir: string;
  file: string;
  keyring: Keyring;
  keyFile: string;
  offsite: LocalStorage;
  open(stores?: BackupStorage[]): AuditLog;
}

async function installation(): Promise<Installation> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lifeline-audit-'));
  const keyFile = path.join(dir, 'keys', 'master.key');
  await createKeyFile(keyFile);
  const keyring = keyringFor({ encryption: { keyFile, cipher: 'aes-256-gcm', kms: { region: 'us-east-1' } } } as LifelineConfig);
  const file = path.join(dir, 'backups', 'audit', 'audit.jsonl');
  const offsite = new LocalStorage('offsite', path.join(dir, 'offsite'));
  return { dir, file, keyring, keyFile, offsite, open: (stores = [offsite]) => new AuditLog(file, auditKeySource(auditKeyFile(file), keyring), stores) };
}

async function append(log: AuditLog, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) {
    await log.append({ eventId: `e${i}`, actor: i % 2 ? 'schedule' : 'alice', action: 'backup', status: 'verified', database: 'moneyflow', backupId: `moneyflow_backup_2026110${i}_030000`, sizeBytes: 1000 + i });
  }
}

async function logWith(n: number): Promise<{ log: AuditLog; at: Installation }> {
  const at = await installation();
  const log = at.open();
  await append(log, 1, n);
  return { log, at };
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l);
const writeLines = (file: string, ls: string[]) => writeFileSync(file, ls.map((l) => l + '\n').join(''));

/** Lines as the unkeyed (SHA-256) log wrote them, before this version. */
function legacyLines(n: number): string[] {
  let prev = GENESIS_HASH;
  return Array.from({ length: n }, (_, i) => {
    const body = { seq: i + 1, time: new Date(Date.UTC(2026, 9, i + 1)).toISOString(), eventId: `old${i + 1}`, actor: 'schedule', action: 'backup', status: 'verified', prevHash: prev };
    prev = createHash('sha256').update(JSON.stringify(body)).digest('hex');
    return JSON.stringify({ ...body, hash: prev });
  });
}

describe('audit log (keyed chain)', () => {
  it('keys and chains every entry, and verifies', async () => {
    const { log, at } = await logWith(5);
    const entries = await log.entries();
    assert.deepEqual(entries.map((e) => e.seq), [1, 2, 3, 4, 5]);
    assert.equal(entries[0]!.prevMac, GENESIS_HASH);
    for (let i = 1; i < entries.length; i++) assert.equal(entries[i]!.prevMac, entries[i - 1]!.mac);
    assert.ok(entries.every((e) => e.hash === undefined && /^[0-9a-f]{64}$/.test(e.mac!) && e.auditKey === entries[0]!.auditKey));
    const check = await log.verify();
    assert.equal(check.ok, true, JSON.stringify(check.broken));
    assert.deepEqual(check.head, { seq: 5, mac: entries[4]!.mac });
    assert.equal(check.keyedFromSeq, 1);
    assert.deepEqual(check.anchors, [{ destination: 'offsite', checked: 5, newestSeq: 5, rejected: [], error: undefined }]);
    assert.ok(await at.offsite.get(anchorKey(5)));
    // The MAC is an HMAC under the unwrapped audit key, not under anything written beside the log.
    const record = (await readAuditKeyFile(auditKeyFile(at.file)))!;
    const key = await at.keyring.unwrap(record, AUDIT_KEY_CONTEXT);
    assert.notDeepEqual(key, Buffer.alloc(32));
    const { mac, ...body } = entries[2]!;
    assert.equal(createHmac('sha256', key).update(JSON.stringify(body)).digest('hex'), mac);
  });

  it('writes a retried event once', async () => {
    const { log } = await logWith(3);
    const again = await log.append({ eventId: 'e2', actor: 'alice', action: 'backup', status: 'verified' });
    assert.equal(again.seq, 2);
    assert.equal((await log.entries()).length, 3);
  });

  it('names the line that was edited', async () => {
    const { log } = await logWith(5);
    const ls = lines(log.file);
    ls[2] = ls[2]!.replace('"sizeBytes":1003', '"sizeBytes":9999');
    writeLines(log.file, ls);
    const check = await log.verify();
    assert.equal(check.ok, false);
    assert.deepEqual(check.broken, { line: 3, reason: 'its content does not match its hash (its HMAC under the audit key): the line was edited, or written without the audit key' });
  });

  it('names the line after one that was removed', async () => {
    const { log } = await logWith(5);
    const ls = lines(log.file);
    ls.splice(1, 1);
    writeLines(log.file, ls);
    const check = await log.verify();
    assert.equal(check.broken?.line, 2);
    assert.match(check.broken!.reason, /removed, inserted or reordered/);
  });

  it('keeps the chain under concurrent appends', async () => {
    const { log } = await logWith(0);
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.append({ eventId: `c${i}`, actor: 'schedule', action: 'backup', status: 'verified' })));
    assert.deepEqual(await log.verify().then((c) => [c.ok, c.entries]), [true, 20]);
  });

  it('continues a legacy (unkeyed) log with a keyed chain whose first line pins the legacy head', async () => {
    const at = await installation();
    const log = at.open();
    const old = legacyLines(3);
    mkdirSync(path.dirname(at.file), { recursive: true });
    writeLines(at.file, old);
    await append(log, 4, 5);
    const check = await log.verify();
    assert.equal(check.ok, true, JSON.stringify(check.broken));
    assert.equal(check.keyedFromSeq, 4);
    assert.equal((await log.entries())[3]!.prevMac, (JSON.parse(old[2]!) as { hash: string }).hash);

    // Rewriting the legacy part (recomputing its SHA-256 chain) now breaks the first keyed line.
    const ls = lines(at.file);
    const forged = legacyLines(3).map((l) => l.replace('"actor":"schedule"', '"actor":"mallory"'));
    let prev = GENESIS_HASH;
    const rechained = forged.map((l) => {
      const { hash: _hash, ...body } = JSON.parse(l) as Record<string, unknown>;
      body.prevHash = prev;
      prev = createHash('sha256').update(JSON.stringify(body)).digest('hex');
      return JSON.stringify({ ...body, hash: prev });
    });
    writeLines(at.file, [...rechained, ...ls.slice(3)]);
    const after = await log.verify();
    assert.equal(after.broken?.line, 4);
    assert.match(after.broken!.reason, /removed, inserted or reordered/);
  });

  it('names keyed lines passed off as legacy ones (MACs stripped, SHA-256 chain recomputed)', async () => {
    const { log } = await logWith(4);
    let prev = GENESIS_HASH;
    const downgraded = lines(log.file).map((l) => {
      const { mac: _mac, prevMac: _prev, auditKey: _key, ...body } = JSON.parse(l) as Record<string, unknown>;
      const withPrev = { ...body, prevHash: prev };
      prev = createHash('sha256').update(JSON.stringify(withPrev)).digest('hex');
      return JSON.stringify({ ...withPrev, hash: prev });
    });
    writeLines(log.file, downgraded);
    const check = await log.verify();
    assert.equal(check.broken?.line, 1);
    assert.match(check.broken!.reason, /no MAC, but every line from seq 1 on is keyed/);
  });

  it('refuses to write, and verify names the line, when the key file is gone; a moved chain start is refused', async () => {
    const { log, at } = await logWith(3);
    const keyFile = auditKeyFile(at.file);
    const record = readFileSync(keyFile, 'utf8');
    rmSync(keyFile);
    await assert.rejects(append(log, 4, 4), { code: 'AuditKeyMissing' });
    const check = await log.verify();
    assert.equal(check.broken?.line, 1);
    assert.match(check.broken!.reason, /audit key file .* is missing/);

    writeFileSync(keyFile, record.replace('"keyedFromSeq": 1', '"keyedFromSeq": 3'));
    await assert.rejects(log.verify(), { code: 'IntegrityError', message: /was altered/ });
  });

  it('ignores anchors it cannot authenticate, and an unreachable destination does not fail the append', async () => {
    const { log, at } = await logWith(2);
    await at.offsite.putIfAbsent(anchorKey(9), Buffer.from(JSON.stringify({ anchorVersion: 1, seq: 9, mac: 'f'.repeat(64), auditKey: 'x', time: 'now', anchorMac: '0'.repeat(64) })));
    const check = await log.verify();
    assert.equal(check.ok, true, JSON.stringify(check.broken));
    assert.match(check.warnings.join('\n'), /1 anchor\(s\) in offsite are not authentic/);

    const down: BackupStorage = Object.assign(Object.create(at.offsite) as LocalStorage, {
      name: 'down',
      putIfAbsent: () => Promise.reject(new Error('connect ECONNREFUSED')),
    });
    const recorded = await at.open([at.offsite, down]).record({ eventId: 'e3', actor: 'alice', action: 'backup', status: 'verified' });
    assert.equal(recorded.entry.seq, 3);
    assert.deepEqual(recorded.anchors.written, ['offsite']);
    assert.deepEqual(recorded.anchors.failed, [{ destination: 'down', error: 'connect ECONNREFUSED' }]);
  });

  it('names the missing seqs of a cut-off tail from the anchors', async () => {
    const { log } = await logWith(5);
    writeLines(log.file, lines(log.file).slice(0, 2));
    const check = await log.verify();
    assert.equal(check.ok, false);
    assert.deepEqual(check.broken?.missing, { from: 3, to: 5 });
    assert.equal(check.broken?.line, 3);
  });

  it('re-wraps the same audit key after a master key rotation; older lines still verify', async () => {
    const { log, at } = await logWith(2);
    const before = await readAuditKeyFile(auditKeyFile(at.file));
    const { keyId } = await new LocalKeyFileProvider(at.keyFile).rotate('rotation-1');
    await append(log, 3, 3);
    const after = await readAuditKeyFile(auditKeyFile(at.file));
    assert.equal(after!.keyId, keyId);
    assert.notEqual(after!.keyId, before!.keyId);
    assert.deepEqual(after!.previousKeyIds, [before!.keyId]);
    assert.equal(after!.auditKeyId, before!.auditKeyId);
    assert.equal((await log.verify()).ok, true);
  });
});
