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
  let stream: Awaited<ReturnType<typeof recoveredCopy>>;

  before(async () => {
    servers = await testServers();
    ({ folder: flat, file, keyFile } = await recoveredCopy(servers, 'dx_source'));
    stream = await recoveredCopy(servers, 'dx_stream', { format: 'stream' });
  });

  it('gives back a pg_dump archive that restores the database exactly, from a backup in parts or in one stream', async () => {
    for (const [copy, database, said] of [
      [{ file, folder: flat, keyFile }, 'dx_source', /every part's SHA-256 matches the manifest/],
      [stream, 'dx_stream', /SHA-256 matches the manifest/],
    ] as const) {
      const out = path.join(copy.folder, 'recovered.dump');
      const { stderr } = await decrypt([copy.file, '-o', out], copy.keyFile);
      assert.match(String(stderr), said);
      await servers.cluster.sql('DROP DATABASE IF EXISTS dx_recovered');
      await servers.cluster.sql('CREATE DATABASE dx_recovered');
      await run(pgTool('pg_restore'), ['--no-owner', '--exit-on-error', `--dbname=${servers.cluster.adminUrl('dx_recovered')}`, out]);
      assert.deepEqual(await contentOf(servers.cluster.adminUrl('dx_recovered')), await contentOf(servers.cluster.adminUrl(database)));
    }
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
