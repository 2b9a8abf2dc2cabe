/**
 * `lifeline up` uses a codec server already listening on LIFELINE_CODEC_SERVER_ADDRESS, and points the Web UI
 * at it: the UI then shows what that server returns as the decoded payloads, and sends it what an operator
 * types to encode. Before, anything listening there was taken (another local user's program squatting
 * 127.0.0.1:8888). Now it is used only when it is this installation's own codec server: a value it encodes
 * must come back encrypted and decrypt here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { codecServerForUp, startConfiguredCodecServer } from '../../src/cli/commands/codec-server';
import type { LifelineConfig } from '../../src/config/config';
import { forgetCodecKeys } from '../../src/crypto/codec-keys';
import { createKeyFile } from '../../src/crypto/keys/local-key-file';
import { LifelineError } from '../../src/errors';

async function installation(): Promise<LifelineConfig> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lifeline-codec-up-'));
  const keyFile = path.join(dir, 'keys', 'master.key');
  await createKeyFile(keyFile);
  return {
    backupDir: path.join(dir, 'backups'),
    encryption: { keyFile, cipher: 'aes-256-gcm', kms: { region: 'us-east-1' } },
    temporal: { namespace: 'default' },
    codecServer: { address: '127.0.0.1:0', corsOrigins: [] },
  } as unknown as LifelineConfig;
}

/** A server on a free loopback port answering every request with `answer(body)`. */
async function impostor(answer: (body: string) => { status: number; body: string }): Promise<{ address: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { status, body } = answer(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('lifeline up and a codec server already listening', () => {
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers) await close();
  });

  const refused = (address: string) => (err: unknown) => {
    assert.ok(err instanceof LifelineError, String(err));
    assert.equal(err.code, 'CodecServerForeign');
    assert.match(err.message, new RegExp(address.replace(/[.]/g, '\\.')));
    return true;
  };

  it('refuses a server that echoes the payloads (it would show anything as decoded)', async () => {
    const cfg = await installation();
    const echo = await impostor((body) => ({ status: 200, body }));
    closers.push(echo.close);
    await assert.rejects(codecServerForUp({ ...cfg, codecServer: { ...cfg.codecServer, address: echo.address } }), refused(echo.address));
  });

  it('refuses one that claims to encrypt, and a plain web server', async () => {
    const cfg = await installation();
    const fake = await impostor(() => ({
      status: 200,
      body: JSON.stringify({ payloads: [{ metadata: { encoding: Buffer.from('binary/encrypted').toString('base64'), 'encryption-key-id': Buffer.from('0123456789abcdef').toString('base64') }, data: Buffer.alloc(40, 1).toString('base64') }] }),
    }));
    const web = await impostor(() => ({ status: 404, body: 'not found' }));
    closers.push(fake.close, web.close);
    await assert.rejects(codecServerForUp({ ...cfg, codecServer: { ...cfg.codecServer, address: fake.address } }), refused(fake.address));
    await assert.rejects(codecServerForUp({ ...cfg, codecServer: { ...cfg.codecServer, address: web.address } }), refused(web.address));
  });

  it("uses this installation's own codec server, and refuses another installation's", async () => {
    const cfg = await installation();
    const own = await startConfiguredCodecServer(cfg, '127.0.0.1:0');
    closers.push(own.close);
    const address = new URL(own.url).host;
    const used = await codecServerForUp({ ...cfg, codecServer: { ...cfg.codecServer, address } });
    assert.deepEqual(used, { url: `http://${address}`, started: false });
    // Another installation runs in another process: forget the keys this one unwrapped (a process keeps them by id).
    forgetCodecKeys();
    const other = await installation();
    await assert.rejects(codecServerForUp({ ...other, codecServer: { ...other.codecServer, address } }), refused(address));
  });
});
