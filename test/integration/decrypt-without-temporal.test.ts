import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import { catalogBackup } from '../../src/backup/catalog-backup';
import { dumpToRepository } from '../../src/backup/dump';
import { localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { backupId } from '../../src/catalog/naming';
import { keyringFor } from '../../src/crypto/keys';
import { createKeyFile } from '../../src/crypto/keys/local-key-file';
import { pgTool } from '../../src/postgres/binaries';
import { contentOf } from '../harness/compare';
import { seededDatabase, testConfig } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

/** `lifeline decrypt` as an operator runs it after losing the server: no Temporal anywhere. */
function decrypt(args: string[], keyFile: string) {
  return run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'decrypt', ...args], {
    cwd: root,
    env: { ...process.env, BACKUP_ENCRYPTION_KEY: keyFile, TEMPORAL_ADDRESS: '127.0.0.1:1' },
  });
}

describe('recovery without Temporal: lifeline decrypt + pg_restore', () => {
  let servers: TestServers;
  let flat: string;
  let file: string;
  let keyFile: string;

  before(async () => {
    servers = await testServers();
    const source = await seededDatabase(servers, 'dx_source');
    const setup = await testConfig(servers, 'decrypt', [{ name: 'dx_source', url: source.url }]);
    const db = setup.config.databases[0]!;
    const record = await dumpToRepository(setup.config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
    const { verification } = await verifyBackup(localStorageFor(db), record, keyringFor(setup.config));
    await catalogBackup(db, record, verification, 'test', keyringFor(setup.config));
    // As if fetched from offsite into an empty folder on a new machine.
    flat = mkdtempSync(path.join(tmpdir(), 'lifeline-recovered-'));
    file = path.join(flat, path.basename(record.object.key));
    copyFileSync(localStorageFor(db).describe(record.object.key), file);
    copyFileSync(localStorageFor(db).describe(`dx_source/${record.id}.manifest.json`), path.join(flat, `${record.id}.manifest.json`));
    keyFile = setup.env.BACKUP_ENCRYPTION_KEY!;
  });

  it('gives back a pg_dump archive that restores the database exactly', async () => {
    const out = path.join(flat, 'recovered.dump');
    const { stderr } = await decrypt([file, '-o', out], keyFile);
    assert.match(stderr, /SHA-256 matches the manifest/);
    await servers.cluster.sql('DROP DATABASE IF EXISTS dx_recovered');
    await servers.cluster.sql('CREATE DATABASE dx_recovered');
    await run(pgTool('pg_restore'), ['--no-owner', '--exit-on-error', `--dbname=${servers.cluster.adminUrl('dx_recovered')}`, out]);
    assert.deepEqual(await contentOf(servers.cluster.adminUrl('dx_recovered')), await contentOf(servers.cluster.adminUrl('dx_source')));
  });

  it('refuses another key with a clear message and leaves no output behind', async () => {
    const otherKey = path.join(flat, 'other.key');
    await createKeyFile(otherKey);
    const out = path.join(flat, 'wrong.dump');
    await assert.rejects(decrypt([file, '-o', out], otherKey), (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, 1);
      assert.match(String(err.stderr), /was encrypted under key local:[0-9a-f]{16}, but key file .*other\.key holds local:/);
      return true;
    });
    assert.equal(existsSync(out), false);
  });
});
