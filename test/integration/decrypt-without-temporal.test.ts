import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import { createKeyFile } from '../../src/crypto/keys/local-key-file';
import { pgTool } from '../../src/postgres/binaries';
import { contentOf } from '../harness/compare';
import { lifelineDecrypt as decrypt, recoveredCopy } from '../harness/recovery';
import { testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);

describe('recovery without Temporal: lifeline decrypt + pg_restore', () => {
  let servers: TestServers;
  let flat: string;
  let file: string;
  let keyFile: string;

  before(async () => {
    servers = await testServers();
    ({ folder: flat, file, keyFile } = await recoveredCopy(servers, 'dx_source'));
  });

  it('gives back a pg_dump archive that restores the database exactly', async () => {
    const out = path.join(flat, 'recovered.dump');
    const { stderr } = await decrypt([file, '-o', out], keyFile);
    assert.match(String(stderr), /SHA-256 matches the manifest/);
    await servers.cluster.sql('DROP DATABASE IF EXISTS dx_recovered');
    await servers.cluster.sql('CREATE DATABASE dx_recovered');
    await run(pgTool('pg_restore'), ['--no-owner', '--exit-on-error', `--dbname=${servers.cluster.adminUrl('dx_recovered')}`, out]);
    assert.deepEqual(await contentOf(servers.cluster.adminUrl('dx_recovered')), await contentOf(servers.cluster.adminUrl('dx_source')));
  });

  it('refuses another key with a clear message and leaves no output behind', async () => {
    const otherKey = path.join(flat, 'other.key');
    await createKeyFile(otherKey);
    const out = path.join(flat, 'wrong.dump');
    await assert.rejects(decrypt([file, '-o', out], otherKey), (err: { code?: number; stderr?: Buffer }) => {
      assert.equal(err.code, 1);
      assert.match(String(err.stderr), /was encrypted under key local:[0-9a-f]{16}, but key file .*other\.key holds local:/);
      return true;
    });
    assert.equal(existsSync(out), false);
  });
});
