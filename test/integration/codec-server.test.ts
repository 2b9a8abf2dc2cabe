/**
 * The codec server over real HTTP, with Lifeline's real codec (keys wrapped by a test key file):
 * round trip, the bearer token on every POST, CORS, the namespace, body limits and bad JSON; and the
 * real `temporal` CLI decoding a workflow's input through it.
 */
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startConfiguredCodecServer } from '../../src/cli/commands/codec-server';
import { ensureTemporalCli } from '../../src/infra/tools';
import { connectTemporal } from '../../src/temporal/client';
import { payloadsFromJSON, payloadsToJSON, type RunningCodecServer } from '../../src/temporal/codec-server';
import { dataConverterFor } from '../../src/temporal/data-converter';
import { BACKUP_WORKFLOW_TYPE, type BackupWorkflowInput } from '../../workflows/definitions';
import { testConfig, type TestSetup } from '../harness/fixtures';
import { testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);
const TOKEN = `codec-token-${randomBytes(12).toString('hex')}`;
const UI_ORIGIN = 'http://localhost:18233';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json?: any;
}

function call(base: string, method: string, path: string, options: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), { method, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json });
      });
    });
    // The server may answer (413, 401) and close before it has read all of a large body.
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
    req.end(options.body);
  });
}

const text = new TextEncoder();
const utf8 = new TextDecoder();
const jsonPayload = (value: unknown): Payload => ({ metadata: { encoding: text.encode('json/plain') }, data: text.encode(JSON.stringify(value)) });
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

describe('codec server', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let codec: RunningCodecServer;
  let open: RunningCodecServer;
  const secret = `ada-lovelace-${randomBytes(6).toString('hex')}`;

  before(async () => {
    servers = await testServers();
    setup = await testConfig(servers, 'codec', [{ name: 'codec_db', url: 'postgresql://codec@127.0.0.1:1/codec_db' }], {
      env: { LIFELINE_CODEC_TOKEN: TOKEN, LIFELINE_CODEC_CORS_ORIGINS: `${UI_ORIGIN},http://127.0.0.1:18233` },
    });
    codec = await startConfiguredCodecServer(setup.config, '127.0.0.1:0');
    open = await startConfiguredCodecServer({ ...setup.config, codecServer: { ...setup.config.codecServer, token: undefined } }, '127.0.0.1:0');
  });

  after(async () => {
    await codec?.close();
    await open?.close();
  });

  const encodeOne = async (value: unknown) => {
    const res = await call(codec.url, 'POST', '/encode', { headers: auth, body: JSON.stringify(payloadsToJSON([jsonPayload(value)])) });
    assert.equal(res.status, 200, res.text);
    return res.json;
  };

  it('encodes with the installation codec and decodes back, on /encode|decode and /<namespace>/…', async () => {
    const original = { database: 'codec_db', trigger: secret };
    const encoded = await encodeOne(original);
    assert.equal(encoded.payloads.length, 1);
    const [sealed] = payloadsFromJSON(encoded);
    assert.equal(utf8.decode(sealed!.metadata!.encoding!), 'binary/encrypted');
    assert.ok(sealed!.metadata!['encryption-key-id'], 'names its codec key');
    assert.ok(!Buffer.from(sealed!.data!).toString('latin1').includes(secret), 'the value is not in clear');
    for (const path of ['/decode', '/default/decode', '/decode/']) {
      const res = await call(codec.url, 'POST', path, { headers: auth, body: JSON.stringify(encoded) });
      assert.equal(res.status, 200, `${path}: ${res.text}`);
      const [plain] = payloadsFromJSON(res.json);
      assert.equal(utf8.decode(plain!.metadata!.encoding!), 'json/plain');
      assert.deepEqual(JSON.parse(utf8.decode(plain!.data!)), original);
    }
    // Plain payloads (temporal workflow start --input) pass through decode unchanged; an empty list is fine.
    const plainBody = JSON.stringify(payloadsToJSON([jsonPayload({ x: 1 })]));
    const passed = await call(codec.url, 'POST', '/default/decode', { headers: auth, body: plainBody });
    assert.deepEqual(passed.json, JSON.parse(plainBody));
    for (const empty of ['{"payloads":[]}', '{}']) {
      assert.deepEqual((await call(codec.url, 'POST', '/decode', { headers: auth, body: empty })).json, { payloads: [] });
    }
  });

  it('refuses every POST without the right bearer token (401), before reading it', async () => {
    const body = JSON.stringify(await encodeOne({ trigger: secret }));
    const wrong: Array<Record<string, string>> = [
      {},
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
      { authorization: TOKEN },
      { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` },
      { authorization: 'Bearer ' },
    ];
    for (const path of ['/encode', '/decode', '/default/encode', '/default/decode', '/elsewhere/decode', '/nothing']) {
      for (const headers of wrong) {
        const res = await call(codec.url, 'POST', path, { headers: { 'content-type': 'application/json', ...headers }, body });
        assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}: ${res.text}`);
        assert.match(res.headers['www-authenticate'] ?? '', /^Bearer/);
        assert.ok(!res.text.includes(secret) && !res.text.includes(TOKEN));
      }
    }
    // Without a configured token the same request is answered.
    assert.equal((await call(open.url, 'POST', '/decode', { headers: { 'content-type': 'application/json' }, body })).status, 200);
  });

  it('answers CORS only for the configured origins, with a preflight that needs no token', async () => {
    const preflight = await call(codec.url, 'OPTIONS', '/decode', {
      headers: { origin: UI_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], UI_ORIGIN);
    assert.equal(preflight.headers['access-control-allow-credentials'], 'true');
    assert.match(preflight.headers['access-control-allow-methods'] ?? '', /POST/);
    for (const h of ['content-type', 'x-namespace', 'authorization']) assert.match(preflight.headers['access-control-allow-headers'] ?? '', new RegExp(h));
    assert.match(String(preflight.headers.vary), /Origin/);
    assert.equal(preflight.headers['access-control-allow-private-network'], undefined, 'only when asked');
    const privateNetwork = await call(codec.url, 'OPTIONS', '/decode', {
      headers: { origin: UI_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-private-network': 'true' },
    });
    assert.equal(privateNetwork.headers['access-control-allow-private-network'], 'true');

    const body = JSON.stringify(await encodeOne({ trigger: secret }));
    const allowed = await call(codec.url, 'POST', '/decode', { headers: { ...auth, origin: 'http://127.0.0.1:18233', 'x-namespace': 'default' }, body });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['access-control-allow-origin'], 'http://127.0.0.1:18233');

    for (const origin of ['http://evil.example', 'http://localhost:8233', `${UI_ORIGIN}.evil.example`, 'null']) {
      const pre = await call(codec.url, 'OPTIONS', '/decode', { headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-private-network': 'true' } });
      assert.equal(pre.status, 403, origin);
      assert.equal(pre.headers['access-control-allow-origin'], undefined, origin);
      assert.equal(pre.headers['access-control-allow-private-network'], undefined, origin);
      // A POST from a page elsewhere is refused even with the token (not only unreadable to it).
      const post = await call(codec.url, 'POST', '/decode', { headers: { ...auth, origin }, body });
      assert.equal(post.status, 403, origin);
      assert.equal(post.headers['access-control-allow-origin'], undefined);
      assert.ok(!post.text.includes(secret));
      assert.match(post.json.error, /LIFELINE_CODEC_CORS_ORIGINS/);
    }
  });

  it('serves only the configured namespace (path: 404, X-Namespace: 403)', async () => {
    const body = JSON.stringify(await encodeOne({ trigger: secret }));
    const byPath = await call(codec.url, 'POST', '/production/decode', { headers: auth, body });
    assert.equal(byPath.status, 404);
    assert.equal(byPath.json.code, 'UnknownNamespace');
    assert.match(byPath.json.error, /"production".*"default"/);
    const byHeader = await call(codec.url, 'POST', '/decode', { headers: { ...auth, 'x-namespace': 'production' }, body });
    assert.equal(byHeader.status, 403);
    assert.equal(byHeader.json.code, 'WrongNamespace');
    const both = await call(codec.url, 'POST', '/default/decode', { headers: { ...auth, 'x-namespace': 'production' }, body });
    assert.equal(both.status, 403);
    assert.ok(![byPath, byHeader, both].some((r) => r.text.includes(secret)));
    assert.equal((await call(codec.url, 'GET', '/decode', { headers: auth })).status, 405);
    assert.equal((await call(codec.url, 'POST', '/default/decode/more', { headers: auth, body })).status, 404);
  });

  it('refuses a body over 4 MiB (413), declared or streamed, and stays up', async () => {
    const big = JSON.stringify({ payloads: [{ metadata: {}, data: Buffer.alloc(3.2 * 1024 * 1024).toString('base64') }] });
    assert.ok(big.length > 4 * 1024 * 1024);
    const declared = await call(codec.url, 'POST', '/decode', { headers: { ...auth, 'content-length': String(big.length) }, body: big });
    assert.equal(declared.status, 413);
    assert.equal(declared.json.code, 'PayloadTooLarge');
    const streamed = await call(codec.url, 'POST', '/decode', { headers: { ...auth, 'transfer-encoding': 'chunked' }, body: big });
    assert.equal(streamed.status, 413);
    // Just under the limit is decoded (a plain payload passes through).
    const fits = JSON.stringify({ payloads: [{ metadata: {}, data: Buffer.alloc(2.9 * 1024 * 1024).toString('base64') }] });
    assert.equal((await call(codec.url, 'POST', '/decode', { headers: auth, body: fits })).status, 200);
  });

  it('answers malformed JSON and wrong shapes with 400 and a message saying what is expected', async () => {
    const cases: Array<[string, RegExp]> = [
      ['{"payloads": [', /not JSON.*expected \{"payloads"/],
      ['', /not JSON/],
      ['[]', /must be a JSON object \{"payloads"/],
      ['{"payload": []}', /must be a JSON object \{"payloads".*unknown field "payload"/],
      ['{"payloads": {}}', /must be a JSON object \{"payloads"/],
      ['{"payloads": [42]}', /payloads\[0\] must be an object/],
      ['{"payloads": [{"metadata": {"encoding": 7}, "data": ""}]}', /payloads\[0\]\.metadata\.encoding must be a base64 string/],
      ['{"payloads": [{"metadata": {}, "data": "not base64!"}]}', /payloads\[0\]\.data must be a base64 string/],
      ['{"payloads": [{"metadata": [], "data": ""}]}', /metadata must be an object/],
    ];
    for (const [body, message] of cases) {
      const res = await call(codec.url, 'POST', '/decode', { headers: auth, body });
      assert.equal(res.status, 400, body);
      assert.match(res.json.error, message, body);
    }
  });

  it('answers a payload that does not decrypt with 422 naming the key, not the content', async () => {
    const encoded = await encodeOne({ trigger: secret });
    const [sealed] = payloadsFromJSON(encoded);
    const data = Buffer.from(sealed!.data!);
    data[data.length - 1]! ^= 1;
    const res = await call(codec.url, 'POST', '/decode', { headers: auth, body: JSON.stringify(payloadsToJSON([{ ...sealed, data }])) });
    assert.equal(res.status, 422);
    assert.equal(res.json.code, 'PayloadUndecryptable');
    assert.match(res.json.error, new RegExp(utf8.decode(sealed!.metadata!['encryption-key-id']!)));
  });

  it('lets `temporal workflow show --codec-endpoint` print the decoded input; without it the input stays sealed', async () => {
    const cli = await ensureTemporalCli((l) => console.log(l));
    const client = new Client({ connection: await connectTemporal(servers.temporalAddress), dataConverter: dataConverterFor(setup.config) });
    const workflowId = `codec-cli-${Date.now()}`;
    try {
      // No worker: the started event holds the encoded input, which is all `show` needs.
      const input: BackupWorkflowInput = { database: 'codec_db', trigger: secret };
      await client.workflow.start(BACKUP_WORKFLOW_TYPE, { taskQueue: setup.config.temporal.taskQueue, workflowId, args: [input] });
      const base = ['workflow', 'show', '-w', workflowId, '--address', servers.temporalAddress, '--namespace', 'default', '--output', 'json'];
      // --output json keeps payloads as protobuf JSON: the started event's input, decoded by the codec server or not.
      const startedInput = (stdout: string): Payload => {
        const events = JSON.parse(stdout).events as Array<{ workflowExecutionStartedEventAttributes?: { input: { payloads: unknown[] } } }>;
        return payloadsFromJSON(events[0]!.workflowExecutionStartedEventAttributes!.input)[0]!;
      };
      const decoded = startedInput((await run(cli, [...base, '--codec-endpoint', `${codec.url}/{namespace}`, '--codec-auth', `Bearer ${TOKEN}`])).stdout);
      assert.equal(utf8.decode(decoded.metadata!.encoding!), 'json/plain');
      assert.deepEqual(JSON.parse(utf8.decode(decoded.data!)), input);
      const sealed = startedInput((await run(cli, base)).stdout);
      assert.equal(utf8.decode(sealed.metadata!.encoding!), 'binary/encrypted', 'sealed without the codec server');
      assert.ok(!Buffer.from(sealed.data!).toString('latin1').includes(secret));

      // The text output a person reads shows the input as JSON, and only through the codec server
      // (of a closed workflow: for a running one it waits for more events).
      await client.workflow.getHandle(workflowId).terminate('shown');
      const detailed = ['workflow', 'show', '--detailed', '-w', workflowId, '--address', servers.temporalAddress];
      const shown = await run(cli, [...detailed, '--codec-endpoint', codec.url, '--codec-auth', `Bearer ${TOKEN}`]);
      assert.ok(shown.stdout.includes(secret), `decoded input expected in:\n${shown.stdout.slice(0, 3000)}`);
      const unshown = await run(cli, detailed);
      assert.ok(!unshown.stdout.includes(secret));

      // A wrong token: the CLI fails rather than printing anything decoded.
      const refused = await run(cli, [...base, '--command-timeout', '3s', '--codec-endpoint', codec.url, '--codec-auth', 'Bearer wrong-token-0123456789']).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, out: err.stdout + err.stderr }),
      );
      assert.notEqual(refused.code, 0);
      assert.ok(!refused.out.includes(secret));
      assert.ok(!refused.out.includes(TOKEN));
    } finally {
      await client.workflow.getHandle(workflowId).terminate('test done').catch(() => undefined);
      await client.connection.close();
    }
  });
});
