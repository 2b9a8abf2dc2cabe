import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { lifelineDecrypt as decrypt, recoveredCopy } from '../harness/recovery';
import { testServers } from '../harness/servers';

describe('lifeline decrypt -o writes a new file only when the whole backup is authenticated', () => {
  let folder: string;
  let good: string;
  let tampered: string;
  let keyFile: string;
  let rawSha256: string;

  before(async () => {
    // One stream: its archive is the plain pg_dump output itself, SHA-256 and all (parts: decrypt-parts.test.ts).
    const copy = await recoveredCopy(await testServers(), 'dy_source', { format: 'stream' });
    ({ keyFile, folder } = copy);
    rawSha256 = copy.record.rawSha256;
    // A second copy with its last byte flipped, its manifest beside it: the last chunk fails
    // authentication after every chunk before it passed.
    const name = path.basename(copy.file);
    const bytes = readFileSync(copy.file);
    mkdirSync(path.join(folder, 'bad'));
    tampered = path.join(folder, 'bad', name);
    writeFileSync(tampered, Buffer.concat([bytes.subarray(0, -1), Buffer.from([bytes.at(-1)! ^ 1])]));
    copyFileSync(path.join(folder, `${copy.record.id}.manifest.json`), path.join(folder, 'bad', `${copy.record.id}.manifest.json`));
    good = copy.file;
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
