/**
 * S3 and KMS endpoints that accept the connection and never answer (a stuck load balancer, a
 * firewall that drops replies): every request must fail within the configured timeout, retryably,
 * naming the endpoint and what timed out, instead of hanging the step until its 12 h timeout.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { KmsKeyProvider } from '../../src/crypto/keys/kms';
import { LifelineError } from '../../src/errors';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const tsx = pathToFileURL(path.join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/7d1b2f4e-5a6c-4e8f-9b0a-1c2d3e4f5a6b';

/** A TCP server that accepts every connection, reads what it is sent, and never writes a byte. */
async function silentServer(): Promise<{ endpoint: string; connections: () => number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    connections: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('S3 and KMS that accept connections and never answer', () => {
  let silent: Awaited<ReturnType<typeof silentServer>>;

  before(async () => {
    // KMS signs its requests: any credentials do for a server that never reads them.
    process.env.AWS_ACCESS_KEY_ID ??= 'lifeline-test';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'lifeline-test';
    silent = await silentServer();
  });
  after(() => silent?.close());

  it('lifeline list --storage offsite fails within the request timeout, naming the endpoint', { timeout: 120_000 }, async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'lifeline-silent-s3-'));
    const started = Date.now();
    const failure = await run(process.execPath, ['--import', tsx, path.join(root, 'src', 'cli', 'main.ts'), 'list', '--storage', 'offsite'], {
      cwd,
      timeout: 90_000,
      env: {
        ...process.env,
        LIFELINE_CONFIG: '',
        DATABASE_URL: '',
        BACKUP_S3_BUCKET: 'silent-offsite',
        BACKUP_S3_ENDPOINT: silent.endpoint,
        BACKUP_S3_ACCESS_KEY_ID: 'silent-key',
        BACKUP_S3_SECRET_ACCESS_KEY: 'silent-secret',
        BACKUP_CONNECT_TIMEOUT: '2s',
        BACKUP_REQUEST_TIMEOUT: '2s',
        TEMPORAL_ADDRESS: '127.0.0.1:1',
      },
    }).then(
      () => assert.fail('list succeeded against a server that never answers'),
      (err: { code?: number | string; killed?: boolean; stderr?: string }) => err,
    );
    const seconds = (Date.now() - started) / 1000;
    assert.equal(failure.killed, false, `list was still hanging after ${seconds.toFixed(0)} s`);
    assert.equal(failure.code, 1, String(failure.stderr));
    assert.ok(seconds < 45, `failed after ${seconds.toFixed(1)} s: three 2 s attempts (and a process start) should take well under 45 s`);
    assert.ok(silent.connections() >= 1, 'the request reached the silent server');
    const stderr = String(failure.stderr);
    assert.match(stderr, new RegExp(silent.endpoint.replace(/[.:/]/g, '\\$&')), `names the endpoint: ${stderr}`);
    assert.match(stderr, /no answer within 2 s/, stderr);
    assert.match(stderr, /BACKUP_REQUEST_TIMEOUT/, stderr);
    assert.doesNotMatch(stderr, /silent-secret/);
  });

  it('generating and opening a KMS data key fail within the request timeout, retryably, naming the endpoint', { timeout: 120_000 }, async () => {
    const kms = new KmsKeyProvider({ keyId: KEY_ARN, endpoint: silent.endpoint, region: 'us-east-1', network: { connectSeconds: 2, idleSeconds: 2 } });
    const context = { database: 'silent', backupId: 'silent-20260101T000000Z' };
    for (const attempt of [
      () => kms.generateDataKey(context),
      () => kms.unwrapDataKey({ provider: 'kms', keyId: KEY_ARN, wrappedKey: Buffer.alloc(32).toString('base64') }, context),
    ]) {
      const started = Date.now();
      const err = await Promise.race([
        attempt().then(
          () => assert.fail('KMS answered'),
          (e: unknown) => e,
        ),
        new Promise((resolve) => setTimeout(() => resolve(new Error('still waiting after 60 s')), 60_000).unref()),
      ]);
      const seconds = (Date.now() - started) / 1000;
      assert.ok(err instanceof LifelineError, `a LifelineError, not ${String(err)}`);
      assert.equal(err.code, 'KeyServiceUnavailable');
      assert.equal(err.retryable, true);
      assert.ok(seconds < 30, `failed after ${seconds.toFixed(1)} s`);
      assert.match(err.message, new RegExp(silent.endpoint.replace(/[.:/]/g, '\\$&')), err.message);
      assert.match(err.message, /no answer within 2 s/, err.message);
      assert.match(err.describe(), /BACKUP_REQUEST_TIMEOUT/);
    }
  });
});
