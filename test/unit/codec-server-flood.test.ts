/**
 * The codec server under many unfinished uploads: no token is asked by default (the Web UI cannot send
 * one), so anyone who can reach the port can open connections that each send most of a 4 MiB body and
 * stop. Each such body was buffered: 200 connections made the process hold ~800 MiB. Now all bodies
 * together hold at most CODEC_MAX_BUFFERED_BYTES (64 MiB), a request going over is answered 503, bytes are
 * given back when a client goes away, uploads stalled after a few bytes block no one, and aborts are not
 * logged as server errors.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fixedCodecKeys } from '../../src/crypto/codec-keys';
import { logger } from '../../src/logger';
import { LifelineCodec } from '../../src/temporal/codec';
import { CODEC_MAX_BUFFERED_BYTES, startCodecServer, type RunningCodecServer } from '../../src/temporal/codec-server';

const BODY = 4 * 1024 * 1024 - 16;
const CONNECTIONS = 200;

/** Opens a connection that sends a POST's headers and all but the last bytes of its body; resolves with the status if the server answers. */
function unfinishedUpload(port: number, sockets: net.Socket[]): Promise<number | undefined> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const socket = net.connect(port, '127.0.0.1', async () => {
      socket.write(`POST /decode HTTP/1.1\r\nHost: codec\r\nContent-Type: application/json\r\nContent-Length: ${BODY}\r\n\r\n`);
      let sent = 0;
      while (sent + chunk.length < BODY - 1 && !socket.destroyed) {
        if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r).once('close', r));
        sent += chunk.length;
      }
      // Body never finished: an upload within the budget gets no answer. The wait is long enough for a
      // loaded machine's server to read what sits in the socket buffers and answer 503 where it must.
      setTimeout(() => resolve(undefined), 3000);
    });
    socket.on('data', (d: Buffer) => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1])));
    socket.on('error', () => undefined);
    sockets.push(socket);
  });
}

function post(url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/decode`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('codec server under many unfinished uploads', () => {
  let server: RunningCodecServer;
  const errors: string[] = [];
  const error = logger.error.bind(logger);

  before(async () => {
    logger.error = ((...args: unknown[]) => {
      errors.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    }) as typeof logger.error;
    server = await startCodecServer({ address: '127.0.0.1:0', codec: new LifelineCodec(fixedCodecKeys([Buffer.alloc(32, 1)])), namespace: 'default', corsOrigins: [] });
  });

  after(async () => {
    logger.error = error;
    await server?.close();
  });

  it('holds at most 64 MiB of bodies, answers 503 beyond, and serves again once they go away', { timeout: 120_000 }, async () => {
    const port = Number(new URL(server.url).port);
    const base = process.memoryUsage().arrayBuffers;
    const sockets: net.Socket[] = [];
    const answers = await Promise.all(Array.from({ length: CONNECTIONS }, () => unfinishedUpload(port, sockets)));
    await new Promise((r) => setTimeout(r, 500));
    const heldMiB = (process.memoryUsage().arrayBuffers - base) / 1048576;
    const busy = answers.filter((s) => s === 503).length;
    assert.ok(heldMiB < 128, `the server holds ${heldMiB.toFixed(0)} MiB of unfinished bodies from ${CONNECTIONS} connections`);
    assert.ok(busy >= CONNECTIONS - 2 * (CODEC_MAX_BUFFERED_BYTES / BODY), `${busy} of ${CONNECTIONS} answered 503`);
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await post(server.url, '{"payloads": []}'), 200, 'the slots of the clients that went away are free');
    assert.deepEqual(errors, [], 'clients going away are not server errors');
  });

  it('uploads stalled after a few bytes do not keep others out', async () => {
    const port = Number(new URL(server.url).port);
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 100; i++) {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('POST /decode HTTP/1.1\r\nHost: codec\r\nContent-Length: 1000\r\n\r\n{"pay'));
      socket.on('error', () => undefined);
      sockets.push(socket);
    }
    await new Promise((r) => setTimeout(r, 500));
    try {
      assert.equal(await post(server.url, '{"payloads": []}'), 200);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
