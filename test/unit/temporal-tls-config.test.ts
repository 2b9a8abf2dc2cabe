import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { LifelineConfig } from '../../src/config/config';
import { loadConfig } from '../../src/config/load';
import { LifelineError } from '../../src/errors';
import { temporalConnectFailure, temporalConnectionOptions } from '../../src/temporal/connection-options';
import { configProblems } from '../harness/config-problems';
import { makeTestPki, type TestPki } from '../harness/tls-proxy';

const API_KEY = 'tmprl-key-0123456789abcdef-SECRET';

function config(env: Record<string, string>, cwd = mkdtempSync(path.join(tmpdir(), 'lifeline-tls-'))): LifelineConfig {
  return loadConfig({ cwd, env: { DATABASE_URL: 'postgresql://app@db.internal/moneyflow', ...env } });
}

async function refusal(promise: Promise<unknown>): Promise<LifelineError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof LifelineError, `expected a LifelineError, got ${err}`);
    return err;
  }
  assert.fail('accepted');
}

describe('TEMPORAL_TLS_* and TEMPORAL_API_KEY', () => {
  let pki: TestPki;
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'lifeline-tls-unit-'));
    pki = makeTestPki(path.join(dir, 'pki'));
  });

  describe('configuration', () => {
    it('is plaintext with none of them set', () => {
      const c = config({});
      assert.equal(c.temporal.tls, undefined);
      assert.equal(c.temporal.apiKey, undefined);
    });

    it('resolves the files against the working directory and turns TLS on', () => {
      const cwd = mkdtempSync(path.join(tmpdir(), 'lifeline-tls-'));
      const c = config({ TEMPORAL_TLS_CERT: 'certs/client.pem', TEMPORAL_TLS_KEY: 'certs/client.key', TEMPORAL_TLS_CA: '/etc/ca.pem', TEMPORAL_TLS_SERVER_NAME: 'temporal.internal' }, cwd);
      assert.deepEqual(c.temporal.tls, {
        certFile: path.join(cwd, 'certs/client.pem'),
        keyFile: path.join(cwd, 'certs/client.key'),
        caFile: '/etc/ca.pem',
        serverName: 'temporal.internal',
      });
    });

    it('turns TLS on for an API key (Temporal Cloud), and TEMPORAL_TLS=true alone uses the system CAs', () => {
      assert.deepEqual(config({ TEMPORAL_API_KEY: API_KEY }).temporal.tls, { certFile: undefined, keyFile: undefined, caFile: undefined, serverName: undefined });
      assert.ok(config({ TEMPORAL_TLS: 'true' }).temporal.tls);
      assert.equal(config({ TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: API_KEY }).temporal.tls, undefined);
    });

    it('refuses a certificate without its key, a key without its certificate, PEM text instead of a path, TLS=false with TLS files, a bad server name', () => {
      const all = [
        ...configProblems(() => config({ TEMPORAL_TLS_CERT: '/c.pem' })),
        ...configProblems(() => config({ TEMPORAL_TLS_KEY: '/c.key' })),
        ...configProblems(() => config({ TEMPORAL_TLS_CA: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----' })),
        ...configProblems(() => config({ TEMPORAL_TLS: 'false', TEMPORAL_TLS_CA: '/ca.pem' })),
        ...configProblems(() => config({ TEMPORAL_TLS_SERVER_NAME: 'temporal internal/x' })),
      ].join('\n');
      assert.match(all, /TEMPORAL_TLS_CERT.*set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY/);
      assert.match(all, /TEMPORAL_TLS_KEY.*set both/);
      assert.match(all, /TEMPORAL_TLS_CA.*must be the path of a PEM file, not its contents/);
      assert.match(all, /TEMPORAL_TLS.*= false, but TEMPORAL_TLS_CERT\/KEY\/CA\/SERVER_NAME are set/);
      assert.match(all, /TEMPORAL_TLS_SERVER_NAME.*must be a DNS name/);
    });

    it('refuses an API key in clear (TEMPORAL_TLS=false) to any host but this one, without showing it', () => {
      const key = 'tmprl-api-key-0123456789';
      const problems = configProblems(() => config({ TEMPORAL_ADDRESS: 'temporal.example.com:7233', TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: key })).join('\n');
      assert.match(problems, /TEMPORAL_TLS = false with TEMPORAL_API_KEY set: the key would cross the network in clear to temporal\.example\.com:7233/);
      assert.ok(!problems.includes(key), problems);
      // A local TLS-adding proxy is the one place plaintext is fine.
      assert.equal(config({ TEMPORAL_ADDRESS: '127.0.0.1:7233', TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: key }).temporal.apiKey, key);
    });

    it('never shows a refused API key, codec token or private key text in a configuration error', () => {
      const shortKey = 'sk-12345';
      const keyText = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----';
      const problems = configProblems(() =>
        config({ TEMPORAL_API_KEY: shortKey.slice(0, 7), TEMPORAL_TLS_CERT: '/c.pem', TEMPORAL_TLS_KEY: keyText, LIFELINE_CODEC_TOKEN: 'short-token' }),
      ).join('\n');
      assert.match(problems, /TEMPORAL_API_KEY = \(7 characters, not shown\): must be the API key itself/);
      assert.match(problems, /TEMPORAL_TLS_KEY = \(\d+ characters, not shown\): must be the path of a PEM file/);
      assert.match(problems, /LIFELINE_CODEC_TOKEN = \(11 characters, not shown\)/);
      for (const secret of [shortKey.slice(0, 7), 'MIGHAgEAMBMGByqGSM49', 'short-token']) assert.ok(!problems.includes(secret), problems);
    });
  });

  describe('connection options', () => {
    it('reads the PEM files into the SDK options: client pair, CA, server name, API key', async () => {
      const options = await temporalConnectionOptions(
        config({ TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_TLS_CERT: pki.client.cert, TEMPORAL_TLS_KEY: pki.client.key, TEMPORAL_TLS_CA: pki.ca.cert, TEMPORAL_TLS_SERVER_NAME: 'temporal.test', TEMPORAL_API_KEY: API_KEY }),
      );
      assert.equal(options.address, 'ns.acct.tmprl.cloud:7233');
      assert.equal(options.apiKey, API_KEY);
      assert.ok(options.tls);
      assert.deepEqual(options.tls.clientCertPair, { crt: readFileSync(pki.client.cert), key: readFileSync(pki.client.key) });
      assert.deepEqual(options.tls.serverRootCACertificate, readFileSync(pki.ca.cert));
      assert.equal(options.tls.serverNameOverride, 'temporal.test');
    });

    it('passes an API key with TLS on and no files (Temporal Cloud), and keeps TLS off when TEMPORAL_TLS=false says so', async () => {
      assert.deepEqual(await temporalConnectionOptions(config({ TEMPORAL_API_KEY: API_KEY })), { address: '127.0.0.1:7233', apiKey: API_KEY, tls: {} });
      // Without tls: false the SDK would turn TLS on by itself for an API key.
      assert.deepEqual(await temporalConnectionOptions(config({ TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: API_KEY })), { address: '127.0.0.1:7233', apiKey: API_KEY, tls: false });
      assert.deepEqual(await temporalConnectionOptions(config({})), { address: '127.0.0.1:7233' });
    });

    it('names the variable and the path of a missing file, a directory, a file that is not PEM, and an encrypted key', async () => {
      const missing = await refusal(temporalConnectionOptions(config({ TEMPORAL_TLS_CA: path.join(dir, 'nope', 'ca.pem') })));
      assert.equal(missing.code, 'TemporalTlsFile');
      assert.match(missing.message, new RegExp(`^TEMPORAL_TLS_CA: ${path.join(dir, 'nope', 'ca.pem')} does not exist`));

      const folder = await refusal(temporalConnectionOptions(config({ TEMPORAL_TLS_CA: dir })));
      assert.match(folder.message, new RegExp(`^TEMPORAL_TLS_CA: ${dir} is a directory`));

      const der = path.join(dir, 'ca.der');
      writeFileSync(der, Buffer.from([0x30, 0x82, 0x01, 0x0a, 0x02, 0x82]));
      const notPem = await refusal(temporalConnectionOptions(config({ TEMPORAL_TLS_CA: der })));
      assert.match(notPem.message, new RegExp(`^TEMPORAL_TLS_CA: ${der} is not a PEM file`));
      assert.match(notPem.hint!, /openssl x509 -inform der/);

      // The key given as the certificate: PEM, but no CERTIFICATE in it.
      const swapped = await refusal(temporalConnectionOptions(config({ TEMPORAL_TLS_CERT: pki.client.key, TEMPORAL_TLS_KEY: pki.client.key })));
      assert.match(swapped.message, new RegExp(`^TEMPORAL_TLS_CERT: ${pki.client.key} holds PRIVATE KEY but no CERTIFICATE`));

      const certAsKey = await refusal(temporalConnectionOptions(config({ TEMPORAL_TLS_CERT: pki.client.cert, TEMPORAL_TLS_KEY: pki.client.cert })));
      assert.match(certAsKey.message, new RegExp(`^TEMPORAL_TLS_KEY: ${pki.client.cert} holds CERTIFICATE but no PRIVATE KEY`));

      const broken = path.join(dir, 'broken.pem');
      writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
      const unparsable = await refusal(temporalConnectionOptions(config({ TEMPORAL_TLS_CA: broken })));
      assert.match(unparsable.message, new RegExp(`^TEMPORAL_TLS_CA: ${broken} holds a certificate that cannot be parsed`));

      const encrypted = path.join(dir, 'encrypted.key');
      writeFileSync(encrypted, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n');
      const locked = await refusal(temporalConnectionOptions(config({ TEMPORAL_TLS_CERT: pki.client.cert, TEMPORAL_TLS_KEY: encrypted })));
      assert.match(locked.message, new RegExp(`^TEMPORAL_TLS_KEY: ${encrypted} is an encrypted private key`));
    });

    it('refuses a key that is not the certificate\'s, and a key without a certificate', async () => {
      const wrong = await refusal(temporalConnectionOptions(config({ TEMPORAL_TLS_CERT: pki.client.cert, TEMPORAL_TLS_KEY: pki.server.key })));
      assert.equal(wrong.code, 'TemporalTlsFile');
      assert.match(wrong.message, new RegExp(`^TEMPORAL_TLS_KEY: ${pki.server.key} is not the private key of the certificate in ${pki.client.cert}`));

      // A configuration not made by loadConfig (which refuses it already).
      const c = config({ TEMPORAL_TLS: 'true' });
      c.temporal.tls = { keyFile: pki.client.key };
      const alone = await refusal(temporalConnectionOptions(c));
      assert.match(alone.message, /^TEMPORAL_TLS_KEY: .* is set without TEMPORAL_TLS_CERT/);
    });

    it('reads a CA bundle of several certificates', async () => {
      const bundle = path.join(dir, 'bundle.pem');
      writeFileSync(bundle, readFileSync(pki.other.cert, 'utf8') + readFileSync(pki.ca.cert, 'utf8'));
      const options = await temporalConnectionOptions(config({ TEMPORAL_TLS_CA: bundle }));
      assert.ok(options.tls && options.tls.serverRootCACertificate?.equals(readFileSync(bundle)));
    });
  });

  describe('a refused connection', () => {
    it('says the API key was refused, naming the variable but never the key', async () => {
      const c = config({ TEMPORAL_ADDRESS: '127.0.0.1:1', TEMPORAL_API_KEY: API_KEY });
      const err = await temporalConnectFailure(new Error(`16 UNAUTHENTICATED: Request unauthorized (Authorization: Bearer ${API_KEY})`), c, await temporalConnectionOptions(c));
      assert.equal(err.code, 'TemporalAuthFailed');
      assert.match(err.message, /^Temporal at 127\.0\.0\.1:1 refused the API key \(TEMPORAL_API_KEY\)/);
      assert.ok(!err.message.includes(API_KEY) && !err.describe().includes(API_KEY), err.describe());
      assert.ok(!JSON.stringify(err.details).includes(API_KEY));
    });

    it('connectNative works from source under tsx\'s CommonJS hook, as bin/lifeline.js runs it (worker, npm start)', async () => {
      // import() of a .ts module is not resolved under tsx/cjs: it failed with ERR_MODULE_NOT_FOUND for './runtime'.
      const script = `require('tsx/cjs');
        const { loadConfig } = require('./src/config/load.ts');
        const { connectNative } = require('./src/temporal/connection-options.ts');
        const cfg = loadConfig({ cwd: process.cwd(), env: { DATABASE_URL: 'postgresql://a@127.0.0.1:1/x', TEMPORAL_ADDRESS: '127.0.0.1:1' } });
        connectNative(cfg).then(() => console.log('connected'), (e) => console.log(e.code));`;
      const root = path.join(__dirname, '..', '..');
      const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
      assert.equal(stdout.trim(), 'TemporalUnavailable');
    });

    it('is TemporalUnavailable (retryable) when nothing listens at the address, TLS or not', async () => {
      const plain = await temporalConnectFailure(new Error('Failed to connect before the deadline'), config({ TEMPORAL_ADDRESS: '127.0.0.1:1' }));
      assert.equal(plain.code, 'TemporalUnavailable');
      assert.equal(plain.retryable, true);
      const c = config({ TEMPORAL_ADDRESS: '127.0.0.1:1', TEMPORAL_TLS_CA: pki.ca.cert });
      const tls = await temporalConnectFailure(new Error('Failed to connect before the deadline'), c, await temporalConnectionOptions(c));
      assert.equal(tls.code, 'TemporalUnavailable');
      assert.match(tls.message, /^cannot reach Temporal at 127\.0\.0\.1:1/);
    });
  });
});
