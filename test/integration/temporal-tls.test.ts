/**
 * TEMPORAL_TLS_* and TEMPORAL_API_KEY against a real TLS endpoint: a proxy on loopback terminates
 * TLS (certificates made by openssl here) in front of the dev server's plain port. A client and a
 * worker connected with mTLS run a backup; a wrong CA, a missing client certificate, a certificate
 * for another name and a server without TLS are each refused with a message that says what to check.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { describeResult, startBackup, waitForBackup } from '../../src/cli/commands/backup';
import { catalogFor } from '../../src/backup/repository';
import type { LifelineConfig } from '../../src/config/config';
import { loadConfig } from '../../src/config/load';
import { LifelineError } from '../../src/errors';
import { connectTemporal, createClient } from '../../src/temporal/client';
import { connectNative } from '../../src/temporal/connection-options';
import { createWorker } from '../../src/temporal/worker';
import { ensureTemporalCli } from '../../src/infra/tools';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { newWorkDir, testServers, type TestServers } from '../harness/servers';
import { makeTestPki, startAuthRecorder, startTlsProxy, type AuthRecorder, type TestPki, type TlsProxy } from '../harness/tls-proxy';

const API_KEY = 'tmprl-test-api-key-7f3c9a51e2d84b60';

/** `lifeline ARGS` from the sources, with `env` added to ours; asynchronous, as the proxy runs in this process. */
async function lifeline(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = path.join(__dirname, '..', '..', 'bin', 'lifeline.js');
  try {
    const { stdout, stderr } = await promisify(execFile)(bin, args, { env: { ...process.env, ...env, LIFELINE_FROM_SOURCE: '1' }, encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function refusal(promise: Promise<unknown>): Promise<LifelineError> {
  try {
    const connection = await promise;
    await (connection as { close?: () => Promise<void> })?.close?.();
  } catch (err) {
    assert.ok(err instanceof LifelineError, `expected a LifelineError, got ${(err as Error)?.stack ?? err}`);
    return err;
  }
  assert.fail('the connection was accepted');
}

describe('Temporal over TLS: a TLS-terminating proxy in front of the dev server', () => {
  let servers: TestServers;
  let pki: TestPki;
  let mtls: TlsProxy;
  let named: TlsProxy;
  let recorder: AuthRecorder;
  let setup: TestSetup;
  /** The test's configuration with other Temporal settings (same databases, key and folders). */
  const withTemporal = (env: Record<string, string>): LifelineConfig => {
    const base = Object.fromEntries(Object.entries(setup.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
    return loadConfig({ cwd: setup.dir, env: { ...base, ...env } });
  };

  before(async () => {
    servers = await testServers();
    pki = makeTestPki(path.join(newWorkDir('tls-pki'), 'pki'));
    mtls = await startTlsProxy({ target: servers.temporalAddress, server: pki.server, clientCa: pki.ca.cert });
    named = await startTlsProxy({ target: servers.temporalAddress, server: pki.named });
    recorder = await startAuthRecorder(pki.server);
    const source = await seededDatabase(servers, 'it_tls', { users: 5, transactions: 40 });
    setup = await testConfig(servers, 'tls', [{ name: 'it_tls', url: source.url }], {
      env: { TEMPORAL_ADDRESS: mtls.address, TEMPORAL_TLS_CA: pki.ca.cert, TEMPORAL_TLS_CERT: pki.client.cert, TEMPORAL_TLS_KEY: pki.client.key },
    });
  });

  after(async () => {
    await mtls?.stop();
    await named?.stop();
    await recorder?.stop();
  });

  it('a client and a worker connected with mTLS run a backup to completion', async () => {
    assert.ok(setup.config.temporal.tls?.certFile, 'the configuration asks for mTLS');
    const client: Client = await createClient(setup.config);
    const worker = await createWorker(setup.config);
    const running = worker.run();
    try {
      const started = await startBackup(client, setup.config, 'it_tls', 'full');
      const result = await waitForBackup(started, { live: false });
      assert.match(result.backupId, /^it_tls_backup_\d{8}_\d{6}$/, describeResult(result));
      const manifests = await catalogFor(setup.config.databases[0]!).list('it_tls');
      assert.deepEqual(manifests.map((m) => [m.id, m.status]), [[result.backupId, 'verified']]);
    } finally {
      worker.shutdown();
      await running;
      await client.connection.close();
    }
    // Every connection (the client's, the worker's) went through the proxy and showed the client certificate.
    assert.ok(mtls.clientSubjects.length >= 2, `connections through the proxy: ${mtls.clientSubjects.length}`);
    assert.deepEqual(new Set(mtls.clientSubjects), new Set(['lifeline-worker']));
  });

  it('lifeline status reads the last run through the same TLS settings, and says why when the CA is wrong', async () => {
    const ok = await lifeline(['status', '--json'], setup.env);
    assert.ok(ok.stdout.trim(), `lifeline status printed nothing: ${ok.stderr}`);
    const [status] = JSON.parse(ok.stdout) as Array<{ database: string; lastRun?: { workflowId: string; status: string }; temporal?: string }>;
    assert.equal(status?.database, 'it_tls', ok.stderr);
    assert.match(status.lastRun?.workflowId ?? '', /^lifeline-backup-it_tls-manual-/, `${ok.stdout}\n${ok.stderr}`);
    assert.equal(status.lastRun?.status, 'COMPLETED');

    const wrong = await lifeline(['status', '--json'], { ...setup.env, TEMPORAL_TLS_CA: pki.other.cert });
    assert.ok(wrong.stdout.trim(), `lifeline status printed nothing: ${wrong.stderr}`);
    assert.ok(wrong.stderr.includes(`Temporal: cannot connect to Temporal at ${mtls.address} over TLS (TLS with the CA in ${pki.other.cert} (TEMPORAL_TLS_CA)`), wrong.stderr);
    assert.match(wrong.stderr, /→ the server's certificate is not signed by/);
    assert.equal((JSON.parse(wrong.stdout) as Array<{ temporal?: string }>)[0]?.temporal, 'unreachable');
  });

  it('the temporal CLI reads the same variables: with them it lists the backup run through the proxy', async () => {
    const cli = await ensureTemporalCli();
    const env = { ...process.env, TEMPORAL_ADDRESS: mtls.address, TEMPORAL_NAMESPACE: 'default', TEMPORAL_TLS_CA: pki.ca.cert, TEMPORAL_TLS_CERT: pki.client.cert, TEMPORAL_TLS_KEY: pki.client.key };
    const { stdout } = await promisify(execFile)(cli, ['workflow', 'list', '--query', "WorkflowId STARTS_WITH 'lifeline-backup-it_tls-manual-'", '--output', 'json'], { env, encoding: 'utf8' });
    assert.match(stdout, /lifeline-backup-it_tls-manual-/);
  });

  it('refuses a server whose certificate another CA signed, naming the address and the CA file (client and worker)', async () => {
    const cfg = withTemporal({ TEMPORAL_ADDRESS: mtls.address, TEMPORAL_TLS_CA: pki.other.cert, TEMPORAL_TLS_CERT: pki.client.cert, TEMPORAL_TLS_KEY: pki.client.key });
    for (const [path_, err] of [
      ['client', await refusal(connectTemporal(cfg))],
      ['worker', await refusal(connectNative(cfg))],
    ] as const) {
      assert.equal(err.code, 'TemporalTlsFailed', `${path_}: ${err.describe()}`);
      assert.ok(err.message.startsWith(`cannot connect to Temporal at ${mtls.address} over TLS (TLS with the CA in ${pki.other.cert} (TEMPORAL_TLS_CA)`), `${path_}: ${err.message}`);
      assert.match(err.hint!, new RegExp(`the server's certificate is not signed by the CA in ${pki.other.cert} \\(TEMPORAL_TLS_CA\\): set TEMPORAL_TLS_CA to the CA that issued`), path_);
      assert.equal(err.retryable, false);
    }
    // And createWorker (what `lifeline worker` and `npm start` call) says the same.
    const fromCreate = await refusal(createWorker(cfg));
    assert.equal(fromCreate.code, 'TemporalTlsFailed');
    assert.ok(fromCreate.message.includes(pki.other.cert));
  });

  it('refuses a connection without a client certificate when the server requires one (client and worker)', async () => {
    const refusedBefore = mtls.refused.length;
    const cfg = withTemporal({ TEMPORAL_ADDRESS: mtls.address, TEMPORAL_TLS_CA: pki.ca.cert });
    for (const [path_, err] of [
      ['client', await refusal(connectTemporal(cfg))],
      ['worker', await refusal(connectNative(cfg))],
    ] as const) {
      assert.equal(err.code, 'TemporalTlsFailed', `${path_}: ${err.describe()}`);
      assert.match(err.message, /no client certificate \(TEMPORAL_TLS_CERT unset\)/, path_);
      assert.match(err.hint!, /the server requires a client certificate \(mTLS\): set TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY/, `${path_}: ${err.describe()}`);
    }
    assert.ok(mtls.refused.slice(refusedBefore).some((r) => /did not return a certificate/.test(r)), mtls.refused.join('\n'));
  });

  it('refuses a certificate that does not name the address, and connects with TEMPORAL_TLS_SERVER_NAME', async () => {
    const [, port] = named.address.split(':');
    const byIp = withTemporal({ TEMPORAL_ADDRESS: `127.0.0.1:${port}`, TEMPORAL_TLS_CA: pki.ca.cert });
    for (const [path_, err] of [
      ['client', await refusal(connectTemporal(byIp))],
      ['worker', await refusal(connectNative(byIp))],
    ] as const) {
      assert.equal(err.code, 'TemporalTlsFailed', `${path_}: ${err.describe()}`);
      assert.match(err.hint!, /the server's certificate does not name "127\.0\.0\.1": set TEMPORAL_TLS_SERVER_NAME to a name in its subjectAltName/, `${path_}: ${err.describe()}`);
    }

    const byName = withTemporal({ TEMPORAL_ADDRESS: `127.0.0.1:${port}`, TEMPORAL_TLS_CA: pki.ca.cert, TEMPORAL_TLS_SERVER_NAME: 'temporal.test' });
    const connection = await connectTemporal(byName);
    try {
      const info = await connection.workflowService.getSystemInfo({});
      assert.ok(info.capabilities, 'the dev server answered through the proxy');
    } finally {
      await connection.close();
    }
    const native = await connectNative(byName);
    await native.close();
  });

  it('refuses a server that does not speak TLS, saying so', async () => {
    const cfg = withTemporal({ TEMPORAL_ADDRESS: servers.temporalAddress, TEMPORAL_TLS_CA: pki.ca.cert });
    for (const [path_, err] of [
      ['client', await refusal(connectTemporal(cfg))],
      ['worker', await refusal(connectNative(cfg))],
    ] as const) {
      assert.equal(err.code, 'TemporalTlsFailed', `${path_}: ${err.describe()}`);
      assert.match(err.hint!, new RegExp(`the server at ${servers.temporalAddress} does not speak TLS`), `${path_}: ${err.describe()}`);
    }
  });

  it('sends TEMPORAL_API_KEY as a bearer token over TLS, and a refused key is TemporalAuthFailed without the key', async () => {
    const cfg = withTemporal({ TEMPORAL_ADDRESS: recorder.address, TEMPORAL_TLS_CA: pki.ca.cert, TEMPORAL_API_KEY: API_KEY });
    for (const [path_, connect] of [
      ['client', () => connectTemporal(cfg)],
      ['worker', () => connectNative(cfg)],
    ] as const) {
      const before_ = recorder.requests.length;
      const err = await refusal(connect());
      assert.equal(err.code, 'TemporalAuthFailed', `${path_}: ${err.describe()}`);
      assert.ok(err.message.startsWith(`Temporal at ${recorder.address} refused the API key (TEMPORAL_API_KEY)`), err.message);
      assert.ok(!err.describe().includes(API_KEY) && !JSON.stringify(err.details).includes(API_KEY), err.describe());
      const sent = recorder.requests.slice(before_);
      assert.ok(sent.length > 0, `${path_}: no request reached the endpoint`);
      assert.ok(sent.every((h) => h.authorization === `Bearer ${API_KEY}`), `${path_}: ${JSON.stringify(sent.map((h) => h.authorization ? 'Bearer …' : 'none'))}`);
    }
  });
});
