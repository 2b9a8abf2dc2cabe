/**
 * Secrets in unusual places (found by a red-team review).
 * 1. `sslpassword=` (the passphrase of the client's TLS key) is a libpq secret like `password=`, but
 *    libpq reads it only from the connection string, which pg_dump, pg_restore and psql get on their
 *    command line, where `ps` shows it: such a URL is refused, and its value is known to the redactor.
 * 2. A database password shorter than 6 characters is never redacted as a value: a check command
 *    that prints $PGPASSWORD puts it into the kept (Temporal, notices) output.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { DatabaseConfig } from '../../src/config/config';
import { resolveConnection } from '../../src/postgres/connection';
import { postgresUrl } from '../../src/config/schema';
import { runCheckCommand } from '../../src/restore/check-command';
import { registerConfigSecrets } from '../../src/security/known-secrets';
import { redact } from '../../src/security/redact';

const SSL_SECRET = 'Kx9-ssl-key-passphrase-7731';

describe('secrets in unusual URL parameters', () => {
  let silent: Server;
  let port = 0;
  before(async () => {
    // A "server" that accepts and never answers: pg_dump waits in its startup, visible to ps.
    silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    port = (silent.address() as { port: number }).port;
  });
  after(() => silent.close());

  it('a URL with sslpassword is refused, at configuration and at connection, without showing it', async () => {
    const url = `postgresql://app@127.0.0.1:${port}/moneyflow?sslmode=prefer&sslpassword=${SSL_SECRET}`;
    const checked = postgresUrl.safeParse(url);
    assert.equal(checked.success, false);
    const message = checked.error!.issues.map((i) => i.message).join('; ');
    assert.match(message, /sslpassword/);
    assert.match(message, /service file/);
    assert.ok(!message.includes(SSL_SECRET), message);
    // A URL that did not come through the configuration (a restore target) meets the same refusal.
    const db = { name: 'moneyflow', url, drill: {} } as unknown as DatabaseConfig;
    assert.throws(() => resolveConnection(db), (err: Error) => /sslpassword/.test(err.message) && !err.message.includes(SSL_SECRET));
  });

  it('a secret in any URL parameter is known to the redactor', () => {
    const db = { name: 'moneyflow', url: `postgresql://app@127.0.0.1:${port}/moneyflow?sslpassword=${SSL_SECRET}`, drill: {} } as unknown as DatabaseConfig;
    registerConfigSecrets([db], [], {});
    const text = `connecting with key passphrase: ${SSL_SECRET}`;
    assert.ok(!redact(text).includes(SSL_SECRET), redact(text));
  });

  it('a short database password printed by a check command is redacted', async () => {
    const db = { name: 'moneyflow', url: `postgresql://app:Pw7x@127.0.0.1:${port}/moneyflow`, drill: {} } as unknown as DatabaseConfig;
    registerConfigSecrets([db], [], {});
    const conn = resolveConnection(db);
    const r = await runCheckCommand('echo "pw is [$PGPASSWORD]"; exit 1', conn, { database: 'moneyflow', backupId: 'x' });
    assert.ok(!r.detail.includes('Pw7x'), `kept detail: ${r.detail}`);
    assert.ok(!redact('login app / Pw7x failed').includes('Pw7x'));
  });
});
