import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { dumpToRepository } from '../../src/backup/dump';
import { localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { catalogBackup } from '../../src/backup/catalog-backup';
import { backupId, manifestKey } from '../../src/catalog/naming';
import { keyringFor } from '../../src/crypto/keys';
import { seededDatabase, testConfig } from '../harness/fixtures';
import { testServers } from '../harness/servers';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

function decrypt(args: string[], keyFile: string) {
  return run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'decrypt', ...args], {
    cwd: root,
    env: { ...process.env, BACKUP_ENCRYPTION_KEY: keyFile, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    maxBuffer: 64 * 1024 * 1024,
    encoding: 'buffer',
  });
}

describe('lifeline decrypt -o writes a new file only when the whole backup is authenticated', () => {
  let folder: string;
  let good: string;
  let tampered: string;
  let keyFile: string;
  let rawSha256: string;

  before(async () => {
    const servers = await testServers();
    const source = await seededDatabase(servers, 'dy_source');
    const setup = await testConfig(servers, 'decrypt-output', [{ name: 'dy_source', url: source.url }]);
    const db = setup.config.databases[0]!;
    const record = await dumpToRepository(setup.config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
    const { verification } = await verifyBackup(localStorageFor(db), record, keyringFor(setup.config));
    await catalogBackup(db, record, verification, 'test', keyringFor(setup.config));
    rawSha256 = record.rawSha256;
    keyFile = setup.env.BACKUP_ENCRYPTION_KEY!;
    // Two copies, each with its manifest beside it: one as stored, one with its last byte flipped
    // (the last chunk fails authentication after every chunk before it passed).
    folder = mkdtempSync(path.join(tmpdir(), 'lifeline-decrypt-output-'));
    const bytes = readFileSync(localStorageFor(db).describe(record.object.key));
    for (const [name, body] of [['good', bytes], ['bad', Buffer.concat([bytes.subarray(0, -1), Buffer.from([bytes.at(-1)! ^ 1])])]] as const) {
      const dir = path.join(folder, name);
      mkdirSync(dir);
      writeFileSync(path.join(dir, path.basename(record.object.key)), body);
      copyFileSync(localStorageFor(db).describe(manifestKey(db.name, record.id)), path.join(dir, `${record.id}.manifest.json`));
    }
    good = path.join(folder, 'good', path.basename(record.object.key));
    tampered = path.join(folder, 'bad', path.basename(record.object.key));
  });

  it('--help names the safe pipe into pg_restore', async () => {
    const { stdout } = await decrypt(['--help'], keyFile);
    assert.match(stdout.toString(), /\| pg_restore --single-transaction --exit-on-error/);
  });

  it('a tampered backup leaves neither the output file nor a temporary file', async () => {
    const out = path.join(folder, 'bad', 'restored.dump');
    await assert.rejects(decrypt([tampered, '-o', out], keyFile), (err: { code?: number; stderr?: Buffer }) => {
      assert.equal(err.code, 1);
      assert.match(String(err.stderr), /authentication|IntegrityError|damaged/i);
      return true;
    });
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(path.join(folder, 'bad')).filter((f) => f.includes('restored')), []);
  });

  it('refuses an existing output file, naming it, and leaves it as it was', async () => {
    for (const source of [good, tampered]) {
      const out = path.join(folder, 'existing.dump');
      writeFileSync(out, 'precious');
      await assert.rejects(decrypt([source, '-o', out], keyFile), (err: { code?: number; stderr?: Buffer }) => {
        assert.notEqual(err.code, 0);
        assert.match(String(err.stderr), new RegExp(`${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} already exists`));
        return true;
      });
      assert.equal(readFileSync(out, 'utf8'), 'precious');
    }
    assert.deepEqual(readdirSync(folder).filter((f) => f.includes('.partial')), []);
  });

  it('a good backup gives a new 0600 file that is the pg_dump archive', async () => {
    const out = path.join(folder, 'recovered.dump');
    await decrypt([good, '-o', out], keyFile);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), rawSha256);
    assert.deepEqual(readdirSync(folder).filter((f) => f.includes('.partial')), []);
  });
});
