/**
 * (Found by a red-team review.) A target URL's `passfile` does not re-route the connection, but the
 * requester would name the file: it becomes PGPASSFILE for pg_dump (the pre-restore snapshot),
 * pg_restore and psql, and libpq sends the password of its first matching line to the host the
 * requester also names. TLS key files and `options` (search_path) are the same kind of danger: the
 * strict parser refuses them all before any connection.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import type { LifelineConfig } from '../../src/config/config';
import { pgTool } from '../../src/postgres/binaries';
import { libpqEnv, resolveConnection } from '../../src/postgres/connection';
import { resolveTarget } from '../../src/restore/target';

const run = promisify(execFile);

describe('a target URL cannot name a file on the worker', () => {
  it('passfile, TLS key files and session options are refused before any connection: no password reaches the requester\'s server', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rt2-passfile-'));
    const otherServicePgpass = path.join(dir, 'other-service.pgpass');
    writeFileSync(otherServicePgpass, '*:*:*:*:s3cret-of-another-service\n', { mode: 0o600 });
    let captured: string | undefined;
    // A server that asks for a cleartext password and keeps it.
    const fake = createServer((sock) => {
      let buf = Buffer.alloc(0);
      let started = false;
      sock.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        while (true) {
          if (!started) {
            if (buf.length < 8) return;
            const len = buf.readInt32BE(0);
            if (buf.length < len) return;
            const code = buf.readInt32BE(4);
            buf = buf.subarray(len);
            if (code === 80877103 || code === 80877104) { sock.write('N'); continue; }
            started = true;
            const r = Buffer.alloc(9); r.write('R'); r.writeInt32BE(8, 1); r.writeInt32BE(3, 5); // AuthenticationCleartextPassword
            sock.write(r);
            continue;
          }
          if (buf.length < 5) return;
          const len = buf.readInt32BE(1);
          if (buf.length < 1 + len) return;
          if (buf[0] === 0x70) captured = buf.subarray(5, 1 + len - 1).toString();
          sock.destroy();
          return;
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    try {
      const config = { databases: [], restore: { allowForceToUrlTargets: true }, retentionDays: 30, backupDir: '/nonexistent' } as unknown as LifelineConfig;
      const base = `postgresql://anyone@127.0.0.1:${(fake.address() as AddressInfo).port}/scratch`;
      const attempts: Array<[string, string]> = [
        ['passfile', otherServicePgpass],
        ['sslkey', path.join(dir, 'worker.key')],
        ['sslcert', path.join(dir, 'worker.crt')],
        ['sslrootcert', path.join(dir, 'root.crt')],
        ['sslcrl', path.join(dir, 'root.crl')],
        ['options', '-c search_path=evil,pg_catalog'],
      ];
      for (const [param, value] of attempts) {
        const url = `${base}?${param}=${encodeURIComponent(value)}`;
        let refusal: Error | undefined;
        try {
          const conn = resolveConnection(await resolveTarget(config, url));
          // Accepted: what snapshotTarget (pg_dump), restoreIntoScratch (pg_restore) and restoreTables (psql) would run.
          await run(pgTool('psql'), ['-X', '-At', '-c', 'SELECT 1', `--dbname=${conn.safeUrl}`], { env: libpqEnv(conn) }).catch(() => undefined);
        } catch (err) {
          refusal = err as Error;
        }
        assert.equal(captured, undefined, `the requester's server received "${captured}" from ${otherServicePgpass}`);
        assert.ok(refusal, `a target URL with ?${param}= was accepted`);
        assert.match(refusal.message, new RegExp(`"${param}"`));
        assert.match(refusal.message, /name a file on the worker/);
      }
    } finally {
      fake.close();
    }
  });
});
