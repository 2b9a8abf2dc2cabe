/**
 * Symlinks planted in the repository (README: every repository file is untrusted). Whoever can write
 * BACKUP_DIR (not root) replaces a file or folder Lifeline writes at a predictable name with a
 * symlink to a file root's shells source (/etc/profile.d/x.sh) or to /etc/passwd: the worker (root in
 * the runbook's setup) must never create, write or read through it. `audit/audit.jsonl` once was
 * opened with fs.open(file, 'a') (follows the link, creates its target) and its lines hold strings a
 * requester chooses (actor): bash expands `$(...)` inside them at the next login. Drill reports
 * (`drills/<db>/<predictable id>.json`) and the alert state (temporary `open.json.<pid>.tmp`) were
 * written with fs.writeFile, which follows links too. Each write is now refused as RepositoryTampered.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { auditKeyFile, auditKeySource } from '../../src/audit/audit-key';
import { AuditLog, auditLogFile } from '../../src/audit/audit-log';
import { Catalog } from '../../src/catalog/catalog';
import type { LifelineConfig } from '../../src/config/config';
import { keyringFor } from '../../src/crypto/keys';
import { createKeyFile } from '../../src/crypto/keys/local-key-file';
import { writeDrillReport } from '../../src/drill/reports';
import { AlertState } from '../../src/notify/alert-state';
import { LocalStorage } from '../../src/storage/local';

const tampered = (err: unknown) => (err as { code?: string }).code === 'RepositoryTampered';
const PASSWD = 'root:x:0:0:root:/root:/bin/bash\n';

/** A temporary folder with the repository (`repo/`) and a victim file outside it. */
function installation(): { dir: string; repo: string; victim: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'repo-symlinks-'));
  const victim = path.join(dir, 'outside', 'passwd'); // stands for /etc/passwd
  mkdirSync(path.dirname(victim), { recursive: true });
  writeFileSync(victim, PASSWD);
  return { dir, repo: path.join(dir, 'repo'), victim };
}

describe('symlinks planted in the repository', () => {
  it('a symlinked audit.jsonl (or audit/ folder) never makes the worker create or write a file outside the repository', async () => {
    const { dir, repo } = installation();
    const keyFile = path.join(dir, 'master.key');
    await createKeyFile(keyFile);
    const config = { backupDir: repo, encryption: { keyFile, cipher: 'aes-256-gcm', kms: {} } } as unknown as LifelineConfig;
    const file = auditLogFile(config.backupDir);
    const log = () => new AuditLog(file, auditKeySource(auditKeyFile(file), keyringFor(config)), []);
    await log().append({ eventId: 'e1', action: 'backup', actor: 'schedule', database: 'moneyflow', status: 'ok' } as never);

    // The repository writer swaps the log for a symlink to a shell start-up file that does not exist yet.
    const profile = path.join(dir, 'outside', 'profile.d', 'lifeline.sh'); // stands for /etc/profile.d/lifeline.sh
    mkdirSync(path.dirname(profile), { recursive: true });
    execFileSync('rm', [file]);
    symlinkSync(profile, file);
    const canary = path.join(dir, 'outside', 'PWNED');
    // A refused decision is audited with the name the signal sender chose (NAME allows `$(...)`).
    const refused = log().append({ eventId: 'e2', action: 'restore.approve-refused', actor: `$(touch ${canary})`, database: 'moneyflow', status: 'refused' } as never);
    await assert.rejects(refused, (err) => tampered(err) && /audit\.jsonl is a symbolic link to /.test((err as Error).message));

    const written = existsSync(profile) ? readFileSync(profile, 'utf8') : '';
    if (written) execFileSync('bash', ['-c', `source ${JSON.stringify(profile)} 2>/dev/null; true`]); // root logs in
    assert.equal(written, '', `the worker wrote ${profile} through the symlink:\n${written}\n(sourcing it ran the actor: canary exists = ${existsSync(canary)})`);
    assert.equal(existsSync(profile), false, 'the worker created the symlink target');

    // The whole audit/ folder swapped for a symlink to the shells' folder: refused too.
    execFileSync('rm', ['-r', path.dirname(file)]);
    symlinkSync(path.dirname(profile), path.dirname(file));
    await assert.rejects(log().append({ eventId: 'e3', action: 'backup', actor: 'x', database: 'moneyflow', status: 'ok' } as never), tampered);
    assert.deepEqual(readdirSync(path.dirname(profile)), [], 'the worker wrote into the folder the symlink points to');
  });

  it('a drill report never writes through a symlink planted at its predictable name', async () => {
    const { repo, victim } = installation();
    const config = { backupDir: repo } as unknown as LifelineConfig;
    const report = { drillId: 'lifeline-drill-moneyflow-2026-12-06T05:00:00Z', database: 'moneyflow', kind: 'scheduled', requestedBy: 'schedule', startedAt: '2026-12-06T05:00:00Z', finishedAt: '2026-12-06T05:10:00Z', passed: true, scratchDatabase: 'x', steps: [], checks: [], rto: { ms: 1, targetMs: 2, met: true }, scratchDropped: true } as never;
    // Find where the report goes, then plant the symlink there (the drill id of a Schedule run is predictable).
    const md = await writeDrillReport(config, report);
    const base = md ? md.replace(/\.md$/, '') : '';
    assert.ok(base, 'could not locate the report path');
    execFileSync('rm', [`${base}.json`]);
    symlinkSync(victim, `${base}.json`);
    await assert.rejects(writeDrillReport(config, report), tampered);
    assert.equal(readFileSync(victim, 'utf8'), PASSWD, 'the drill report overwrote the symlink target');
  });

  it('the alert state is never written through a symlink at its file or its (once predictable) temporary name', async () => {
    const { repo, victim } = installation();
    const state = new AlertState(repo);
    assert.equal(await state.open('rpo:moneyflow', 'critical', 'RPO exceeded'), true);
    // The temporary name used to be `open.json.<pid>.tmp`: a symlink there is simply not used.
    symlinkSync(victim, `${state.file}.${process.pid}.tmp`);
    assert.equal(await state.open('disk:moneyflow', 'warning', 'disk filling up'), true);
    assert.deepEqual((await state.list()).map((a) => a.key), ['rpo:moneyflow', 'disk:moneyflow']);
    // The state file itself swapped for a symlink: neither written nor read.
    execFileSync('rm', [state.file]);
    symlinkSync(victim, state.file);
    await assert.rejects(state.clear('rpo:moneyflow'), tampered);
    await assert.rejects(state.open('rpo:moneyflow', 'critical', 'RPO exceeded'), tampered);
    await assert.rejects(state.list(), tampered);
    assert.equal(readFileSync(victim, 'utf8'), PASSWD, 'the alert state overwrote the symlink target');
  });

  it('a symlinked manifest or data file in the local repository is neither listed nor read, and a symlinked folder is refused', async () => {
    const { dir, repo, victim } = installation();
    const storage = new LocalStorage('local', repo);
    const manifest = 'moneyflow/moneyflow_backup_20261206_050000.manifest.json';
    const data = 'moneyflow/moneyflow_backup_20261206_050000.dump.zst.enc';
    assert.equal(await storage.putIfAbsent('moneyflow/README', Buffer.from('ours\n')), true);
    symlinkSync(victim, path.join(repo, manifest));
    symlinkSync(victim, path.join(repo, data));

    assert.deepEqual((await storage.list('moneyflow/')).map((o) => o.key), ['moneyflow/README'], 'a symlink was listed as an object');
    assert.deepEqual(await new Catalog(storage).list('moneyflow'), [], 'a symlinked manifest was catalogued');
    await assert.rejects(storage.get(manifest), tampered);
    await assert.rejects(storage.read(data), tampered);
    await assert.rejects(storage.stat(data), tampered);
    // Publishing never replaces the symlink, and never writes its target.
    assert.equal(await storage.putIfAbsent(manifest, Buffer.from('{}')), false);
    await assert.rejects(storage.replace(manifest, Buffer.from('{}')), tampered);
    assert.equal(readFileSync(victim, 'utf8'), PASSWD);

    // The database's folder swapped for a symlink to a folder outside: nothing listed, read or written there.
    const elsewhere = path.join(dir, 'outside', 'etc');
    mkdirSync(elsewhere);
    writeFileSync(path.join(elsewhere, 'moneyflow_backup_20261206_060000.manifest.json'), '{}');
    execFileSync('rm', ['-r', path.join(repo, 'moneyflow')]);
    symlinkSync(elsewhere, path.join(repo, 'moneyflow'));
    await assert.rejects(storage.list('moneyflow/'), tampered);
    await assert.rejects(storage.get('moneyflow/moneyflow_backup_20261206_060000.manifest.json'), tampered);
    await assert.rejects(storage.createWriter('moneyflow/moneyflow_backup_20261206_070000.dump.zst.enc'), tampered);
    await assert.rejects(storage.putIfAbsent('moneyflow/x.json', Buffer.from('{}')), tampered);
    assert.deepEqual(readdirSync(elsewhere), ['moneyflow_backup_20261206_060000.manifest.json'], 'the worker wrote into the folder the symlink points to');
  });
});
