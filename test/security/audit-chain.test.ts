/**
 * Item 9 of issue 10: the audit trail must not be rewritable by whoever can write its file. Each
 * test plays an attacker with write access to the repository folder but not to the key provider:
 * an edited line with the chain recomputed, a removed line with the chain recomputed, a cut-off
 * tail. The anchors go to a real S3 destination (versitygw) under Object Lock.
 */
import { GetObjectRetentionCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { anchorKey } from '../../src/audit/anchors';
import { auditLogFile, auditLogOf } from '../../src/audit/audit-log';
import { S3Storage } from '../../src/storage/s3';
import type { LifelineConfig } from '../../src/config/config';
import { KEY_ROTATION_WORKFLOW_TYPE } from '../../workflows/definitions';
import { s3Destination, testConfig, type TestSetup } from '../harness/fixtures';
import { assertNotStoredByTemporal } from '../harness/secrets';
import { testServers, type TestServers } from '../harness/servers';
import { decodedPayloadsOf, runWorker, testClient } from '../harness/worker';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

/**
 * What an attacker without the key does after changing line `from` (0-based): renumber and
 * recompute the chain of that line and every later one with SHA-256, as the unkeyed log did.
 */
function rechain(lines: string[], from: number): string[] {
  const chainOf = (entry: Record<string, unknown>) => ('mac' in entry ? { hash: 'mac', prev: 'prevMac' } : { hash: 'hash', prev: 'prevHash' });
  const before = from > 0 ? (JSON.parse(lines[from - 1]!) as Record<string, unknown>) : undefined;
  let prev = before ? (before[chainOf(before).hash] as string) : '0'.repeat(64);
  return lines.map((line, i) => {
    if (i < from) return line;
    const entry = JSON.parse(line) as Record<string, unknown>;
    const field = chainOf(entry);
    entry.seq = i + 1;
    entry[field.prev] = prev;
    delete entry[field.hash];
    prev = createHash('sha256').update(JSON.stringify(entry)).digest('hex');
    return JSON.stringify({ ...entry, [field.hash]: prev });
  });
}

function readLines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
}

function writeLines(file: string, lines: string[]): void {
  writeFileSync(file, lines.map((l) => l + '\n').join(''));
}

// Asked for at the top level: a file run alone then stops its servers when the file ends, not when a hook does.
const serversStarted = testServers();

describe('audit chain: keyed, and anchored outside the file', () => {
  let servers: TestServers;

  before(async () => {
    servers = await serversStarted;
  });

  /** A fresh installation with an S3 destination of its own (its own prefix in one Object Lock bucket) and `n` audited events. */
  async function auditedInstallation(label: string, n: number): Promise<TestSetup> {
    const offsite = await s3Destination(servers.s3, 'offsite', 'audit-anchors', {
      prefix: `${label}-${randomBytes(4).toString('hex')}`,
      objectLock: { mode: 'GOVERNANCE', days: 1 },
    });
    const setup = await testConfig(servers, `audit-${label}`, [{ name: 'ledger', url: servers.cluster.adminUrl('ledger') }], { destinations: [offsite] });
    await appendEvents(setup.config, 1, n);
    return setup;
  }

  async function appendEvents(config: LifelineConfig, from: number, to: number): Promise<void> {
    const log = auditLogOf(config);
    for (let i = from; i <= to; i++) {
      await log.append({ eventId: `e${i}`, actor: 'alice', action: 'backup', status: 'verified', database: 'ledger', backupId: `ledger_backup_2026110${i}_030000`, sizeBytes: 1000 + i });
    }
  }

  /** The CLI; no Temporal server reachable unless the test says otherwise. */
  const cli = (setup: TestSetup, args: string[], extraEnv: Record<string, string> = {}) =>
    run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], {
      cwd: root,
      env: { ...process.env, ...setup.env, TEMPORAL_ADDRESS: '127.0.0.1:1', ...extraEnv },
    }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout + e.stderr }),
    );

  it('an untouched log verifies, chain and anchors', async () => {
    const setup = await auditedInstallation('intact', 4);
    const check = await auditLogOf(setup.config).verify();
    assert.equal(check.ok, true, JSON.stringify(check.broken));
    assert.equal(check.entries, 4);
    assert.deepEqual(check.anchors.map((a) => [a.destination, a.checked, a.newestSeq]), [['offsite', 4, 4]]);
    // Each anchor is kept under the destination's Object Lock.
    const destination = setup.config.destinations[0]!;
    assert.equal(destination.kind, 's3');
    const s3 = new S3Storage(destination.name, destination as Extract<typeof destination, { kind: 's3' }>);
    const bucket = (destination as { bucket: string }).bucket;
    const retention = await s3.client.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: `${(destination as { prefix: string }).prefix}/${anchorKey(4)}` }));
    assert.equal(retention.Retention?.Mode, 'GOVERNANCE');
  });

  it('an edited line with every hash recomputed (SHA-256, no key) is named', async () => {
    const setup = await auditedInstallation('edited', 5);
    const file = auditLogFile(setup.config.backupDir);
    const lines = readLines(file);
    lines[2] = lines[2]!.replace('"sizeBytes":1003', '"sizeBytes":9999');
    writeLines(file, rechain(lines, 2));
    const check = await auditLogOf(setup.config).verify();
    assert.equal(check.ok, false, 'a log rewritten without the key verified as intact');
    assert.equal(check.broken?.line, 3, JSON.stringify(check.broken));
    assert.match(check.broken!.reason, /edited/);
  });

  it('an edit of one line alone is named at that line', async () => {
    const setup = await auditedInstallation('edited-one', 5);
    const file = auditLogFile(setup.config.backupDir);
    const lines = readLines(file);
    lines[2] = lines[2]!.replace('"sizeBytes":1003', '"sizeBytes":9999');
    writeLines(file, lines);
    const check = await auditLogOf(setup.config).verify();
    assert.equal(check.ok, false);
    assert.equal(check.broken?.line, 3);
    assert.match(check.broken!.reason, /edited/);
  });

  it('a middle line removed, with the sequence and chain recomputed, is detected', async () => {
    const setup = await auditedInstallation('removed', 5);
    const file = auditLogFile(setup.config.backupDir);
    const lines = readLines(file);
    lines.splice(2, 1);
    writeLines(file, rechain(lines, 2));
    const check = await auditLogOf(setup.config).verify();
    assert.equal(check.ok, false, 'a log with a line removed verified as intact');
    assert.equal(check.broken?.line, 3, JSON.stringify(check.broken));
  });

  it('a middle line removed as it was (chain left alone) is named', async () => {
    const setup = await auditedInstallation('removed-raw', 5);
    const file = auditLogFile(setup.config.backupDir);
    const lines = readLines(file);
    lines.splice(2, 1);
    writeLines(file, lines);
    const check = await auditLogOf(setup.config).verify();
    assert.equal(check.ok, false);
    assert.equal(check.broken?.line, 3);
    assert.match(check.broken!.reason, /removed|inserted|reordered/);
  });

  it('a cut-off tail is named by the missing sequence numbers (offsite anchor), also by `lifeline audit verify`', async () => {
    const setup = await auditedInstallation('truncated', 5);
    const file = auditLogFile(setup.config.backupDir);
    writeLines(file, readLines(file).slice(0, 3));
    const check = await auditLogOf(setup.config).verify();
    assert.equal(check.ok, false, 'a log with its last two lines cut off verified as intact');
    assert.match(check.broken!.reason, /seq 4.5|4 to 5|4–5/);
    const out = await cli(setup, ['audit', 'verify']);
    assert.equal(out.code, 1, out.stdout);
    assert.match(out.stdout, /BROKEN/);
    assert.match(out.stdout, /seq 4.5|4 to 5|4–5/);
    assert.match(out.stdout, /offsite/);
  });

  it('a log cut back and grown again is caught: the older anchors name its first rewritten line', async () => {
    const setup = await auditedInstallation('regrown', 5);
    const file = auditLogFile(setup.config.backupDir);
    writeLines(file, readLines(file).slice(0, 3));
    await appendEvents(setup.config, 10, 12); // seq 4-6 again, with other content
    const check = await auditLogOf(setup.config).verify();
    assert.equal(check.ok, false);
    assert.equal(check.broken?.line, 4, JSON.stringify(check.broken));
    assert.match(check.broken!.reason, /anchor/);
  });

  describe('through Temporal', () => {
    let setup: TestSetup;
    let client: Client;
    let stopWorker: () => Promise<void>;

    before(async () => {
      setup = await auditedInstallation('temporal', 2);
      client = await testClient(servers, setup.config);
      stopWorker = await runWorker(setup.config);
    });

    after(async () => {
      await stopWorker?.();
      await client?.connection.close();
    });

    it('records the new head in workflow history, survives a key rotation, and the audit key is in clear nowhere', async () => {
      const workflowId = `audit-rotation-${randomBytes(4).toString('hex')}`;
      await client.workflow.execute(KEY_ROTATION_WORKFLOW_TYPE, { taskQueue: setup.config.temporal.taskQueue, workflowId, args: [{ requestedBy: 'alice' }] });

      // The audit activity's result (the head the workflow saw) is in the history: seq 3, with its MAC.
      const history = await client.workflow.getHandle(workflowId).fetchHistory();
      // Results are encrypted by the payload codec: decrypted as the client decrypts them.
      const results = await decodedPayloadsOf(client, (history.events ?? []).map((e) => e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]));
      const entries = readLines(auditLogFile(setup.config.backupDir)).map((l) => JSON.parse(l) as { seq: number; mac?: string });
      assert.equal(entries.length, 3);
      assert.ok(
        results.some((r) => r.includes(`"seq":3`) && r.includes(entries[2]!.mac!)),
        `no activity result holds the head {seq 3, mac}: ${results.join(' | ')}`,
      );

      // After the rotation the audit key is wrapped under the new master key, and old lines still verify.
      const check = await auditLogOf(setup.config).verify();
      assert.equal(check.ok, true, JSON.stringify(check.broken));
      const { readAuditKeyFile, AUDIT_KEY_CONTEXT, auditKeyFile } = await import('../../src/audit/audit-key');
      const { keyringFor } = await import('../../src/crypto/keys');
      const keyring = keyringFor(setup.config);
      const wrapped = await readAuditKeyFile(auditKeyFile(auditLogFile(setup.config.backupDir)));
      assert.ok(wrapped);
      assert.equal(wrapped.keyId, await keyring.current.currentKeyId(), 'the audit key was not re-wrapped under the new master key');

      // Each line's MAC is an HMAC under the unwrapped key (and under nothing a reader of the repository has).
      const key = await keyring.unwrap(wrapped, AUDIT_KEY_CONTEXT);
      for (const line of readLines(auditLogFile(setup.config.backupDir))) {
        const { mac, ...body } = JSON.parse(line) as { mac: string };
        assert.equal(createHmac('sha256', key).update(JSON.stringify(body)).digest('hex'), mac);
      }

      // The plaintext audit key: nowhere in the repository folder, nowhere in Temporal's SQLite files.
      const forms = [key.toString('hex'), key.toString('base64'), key.toString('base64url')];
      for (const form of forms) assertNotStoredByTemporal(servers.temporalDbFile, form);
      const needles = [key, ...forms.map((f) => Buffer.from(f))];
      const walk = (dir: string): string[] =>
        readdirSync(dir).flatMap((name) => {
          const p = path.join(dir, name);
          return statSync(p).isDirectory() ? walk(p) : [p];
        });
      const files = walk(setup.dir);
      assert.ok(files.some((f) => f.endsWith('audit-key.json')));
      for (const file of files) {
        const bytes = readFileSync(file);
        for (const needle of needles) assert.equal(bytes.indexOf(needle), -1, `the audit key in clear in ${file}`);
      }
    });

    it('the heads in Temporal history name a cut-off tail even where no anchor is kept offsite', async () => {
      const { headsInTemporalHistory } = await import('../../src/audit/temporal-heads');
      const { auditKeySource, auditKeyFile } = await import('../../src/audit/audit-key');
      const { AuditLog } = await import('../../src/audit/audit-log');
      const { keyringFor } = await import('../../src/crypto/keys');
      const viaCli = await cli(setup, ['audit', 'verify', '--temporal-days', '1'], { TEMPORAL_ADDRESS: servers.temporalAddress });
      assert.equal(viaCli.code, 0, viaCli.stdout);
      assert.match(viaCli.stdout, /heads in Temporal history: [1-9]\d* compared/);

      const file = auditLogFile(setup.config.backupDir);
      writeLines(file, readLines(file).slice(0, 2)); // seq 3, written by the rotation's audit step, cut off
      const heads = await headsInTemporalHistory(client, setup.config.temporal.taskQueue, 1);
      assert.ok(heads.some((h) => h.seq === 3));
      const withoutOffsite = new AuditLog(file, auditKeySource(auditKeyFile(file), keyringFor(setup.config)), []);
      const check = await withoutOffsite.verify({ recordedHeads: heads });
      assert.equal(check.ok, false);
      assert.deepEqual(check.broken?.missing, { from: 3, to: 3 });
      assert.match(check.broken!.reason, /history of workflow audit-rotation-/);
    });
  });
});
