import { WorkflowFailedError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { SMTPServer } from 'smtp-server';
import { freePort, waitFor } from '../../src/infra/net';
import { BACKUP_WORKFLOW_TYPE, DRILL_WORKFLOW_TYPE, type BackupWorkflowResult } from '../../workflows/definitions';
import { s3Destination, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { assertNotStoredByTemporal } from '../harness/secrets';
import { testServers, type TestServers } from '../harness/servers';
import { webhookReceiver } from '../harness/webhook-receiver';
import { testClient } from '../harness/worker';

const execFileAsync = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const cli = ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts')];

/** A CLI run that may fail: its exit code and everything it printed. */
async function lifeline(args: string[], env: NodeJS.ProcessEnv, cwd = root, timeout = 90_000): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [...cli, ...args], { cwd, env, timeout });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('secrets never leave the worker: not in ps, Temporal, histories, logs or notices (issue 10, item 10)', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let receiver: Awaited<ReturnType<typeof webhookReceiver>>;
  let smtp: SMTPServer;
  let worker: ChildProcess;
  let workerLog = '';
  const mails: string[] = [];
  let smtpLogins = 0;
  const psSamples: string[] = [];
  let sampling = true;
  let sampler: Promise<void>;
  /** Each planted secret with the spellings it could take on the way out. */
  const secrets: Record<string, string[]> = {};
  const dbPassword = `Db-${randomBytes(9).toString('hex')}`;
  const smtpPassword = `Smtp-${randomBytes(9).toString('hex')}`;

  const plant = (name: string, value: string, ...forms: string[]) => {
    secrets[name] = [value, encodeURIComponent(value), Buffer.from(value).toString('base64').replace(/=+$/, ''), ...forms];
  };
  /** Fails naming the secret, its spelling and where it was found. */
  const assertClean = (where: string, content: string | Buffer) => {
    const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content);
    for (const [name, forms] of Object.entries(secrets)) {
      for (const form of forms) assert.equal(bytes.indexOf(form), -1, `${name} (as ${JSON.stringify(form)}) found in ${where}`);
    }
  };
  const execute = <R>(type: string, args: unknown[]) =>
    client.workflow.execute(type, { taskQueue: setup.config.temporal.taskQueue, workflowId: `sec-${type}-${Date.now()}`, args }) as Promise<R>;

  /** Every place a secret could have gone: Temporal's SQLite files, each history of our task queue, logs, notices, ps. */
  const assertNothingLeaked = async () => {
    for (const forms of Object.values(secrets)) for (const form of forms) assertNotStoredByTemporal(servers.temporalDbFile, form);
    let histories = 0;
    for await (const wf of client.workflow.list({ query: `TaskQueue = "${setup.config.temporal.taskQueue}"` })) {
      const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      assertClean(`history of ${wf.workflowId}`, Buffer.from(temporal.api.history.v1.History.encode(history).finish()));
      histories++;
    }
    assert.ok(histories >= 1, 'no history was searched');
    assertClean('the worker log', workerLog);
    assertClean('webhook notices', JSON.stringify(receiver.posts));
    assertClean('e-mail notices', mails.join('\n'));
    psSamples.forEach((s, i) => assertClean(`ps sample ${i}`, s));
  };

  before(async () => {
    servers = await testServers();
    receiver = await webhookReceiver();
    const smtpPort = await freePort();
    smtp = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      onAuth(auth, _session, done) {
        if (auth.username === 'lifeline' && auth.password === smtpPassword) {
          smtpLogins++;
          return done(null, { user: auth.username });
        }
        return done(new Error('bad login'));
      },
      onData(stream, _session, done) {
        let raw = '';
        stream.on('data', (d) => (raw += d));
        stream.on('end', () => {
          mails.push(raw);
          done();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(smtpPort, '127.0.0.1', r));

    // The database password travels as a ?password= parameter, the form libpq would put on pg_dump's command line.
    const seeded = await seededDatabase(servers, 'sec_source', { users: 100, transactions: 20_000 });
    await servers.cluster.sql(`ALTER ROLE sec_source_owner PASSWORD '${dbPassword}' CREATEDB`);
    const url = new URL(seeded.url);
    url.password = '';
    const dbUrl = `${url.toString()}?password=${dbPassword}`;
    // The drill's check prints what it was given: the worker's S3 and SMTP secrets, its URL, a URL built from PG*.
    const command = 'echo "s3=[$LIFELINE_TEST_S3_SECRET] smtp=[$BACKUP_SMTP_PASSWORD]"; echo "cannot check $DATABASE_URL"; echo "try postgresql://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$PGDATABASE"; exit 3';
    setup = await testConfig(servers, 'secrets', [{ name: 'sec_source', url: dbUrl, drill: { command } }], {
      destinations: [await s3Destination(servers.s3, 'offsite', 'sec-offsite')],
      env: {
        BACKUP_WEBHOOK_URL: receiver.url,
        BACKUP_EMAIL_NOTIFICATIONS: 'oncall@moneyflow.example',
        BACKUP_SMTP_HOST: '127.0.0.1',
        BACKUP_SMTP_PORT: String(smtpPort),
        BACKUP_SMTP_USER: 'lifeline',
        BACKUP_SMTP_PASSWORD: smtpPassword,
      },
    });
    const key = Buffer.from(readFileSync(setup.config.encryption.keyFile, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).join(''), 'base64');
    plant('the database password', dbPassword);
    plant('the S3 secret key', servers.s3.secretAccessKey);
    plant('the SMTP password', smtpPassword);
    plant('the master key', key.toString('hex'), key.toString('base64'), key.toString('base64').replace(/=+$/, ''));

    // The worker runs as the operator runs it, its log captured whole (debug level, every line).
    worker = spawn(process.execPath, [...cli, 'worker'], { cwd: root, env: { ...process.env, ...setup.env, LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'pipe'] });
    worker.stdout!.on('data', (d) => (workerLog += d));
    worker.stderr!.on('data', (d) => (workerLog += d));
    await waitFor('the worker', async () => workerLog.includes('worker started'), 120_000, () => (worker.exitCode !== null ? `worker exited: ${workerLog}` : undefined));
    client = await testClient(servers, setup.config);

    // Every process's command line, as anyone on the host sees it, for as long as the tests run.
    sampler = (async () => {
      while (sampling) psSamples.push((await execFileAsync('ps', ['-eww', '-o', 'args='], { maxBuffer: 64 << 20 }).catch(() => ({ stdout: '' }))).stdout);
    })();
  });

  after(async () => {
    sampling = false;
    await sampler;
    if (worker && worker.exitCode === null) {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.kill('SIGTERM');
      await exited;
    }
    await client?.connection.close();
    receiver?.close();
    await new Promise<void>((r) => (smtp ? smtp.close(() => r()) : r()));
  });

  it('a backup with an offsite S3 copy and e-mail notices leaves no secret anywhere', async () => {
    const result = await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, [{ database: 'sec_source' }]);
    assert.ok(result.backupId);
    await waitFor('the success notices', async () => receiver.posts.length >= 1 && mails.length >= 1, 60_000);
    assert.ok(smtpLogins >= 1, 'the SMTP password was used');
    assert.ok(psSamples.some((s) => /pg_dump/.test(s)), `no ps sample caught pg_dump (${psSamples.length} samples)`);
    await assertNothingLeaked();
  });

  it("a failing drill check's output keeps no secret, and the check gets none of the worker's", async () => {
    let failure = '';
    await assert.rejects(execute(DRILL_WORKFLOW_TYPE, [{ database: 'sec_source', kind: 'manual', requestedBy: 'test' }]), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      failure = JSON.stringify((err.cause as { details?: unknown[] }).details ?? []) + String((err.cause as Error).message);
      return true;
    });
    assert.match(failure, /s3=\[\] smtp=\[\]/, 'the command got neither the S3 nor the SMTP secret');
    assert.match(failure, /postgresql:\/\/sec_source_owner:\*\*\*@127\.0\.0\.1/, 'the URL it printed is shown, without its password');
    await waitFor('the drill alert', async () => receiver.posts.some((p) => /drill/.test(p.lifeline.event) && p.lifeline.severity === 'critical'), 60_000);
    await assertNothingLeaked();
  });

  it('a config error with a password URL names the setting and hides the password', async () => {
    // This and the next tests type secrets on command lines themselves: ps stops looking here.
    sampling = false;
    await sampler;
    const configSecret = `Cfg-${randomBytes(9).toString('hex')}`;
    plant('the config error password', configSecret);
    // A URL libpq could not use (the port is not a number): the problem names the variable, not the password.
    const { LIFELINE_CONFIG: _file, ...noFile } = { ...process.env, ...setup.env };
    const bad = await lifeline(['status'], { ...noFile, DATABASE_URL: `postgresql://app:${configSecret}@db.internal:notaport/moneyflow` });
    assert.equal(bad.code, 1, bad.output);
    assert.match(bad.output, /DATABASE_URL = "postgresql:\/\/app:\*\*\*@db\.internal:notaport\/moneyflow"/);
    assertClean('the config error', bad.output);
  });

  it('BACKUP_ENCRYPTION_KEY set to the key itself stops the worker before it starts, without echoing the key', async () => {
    const key = randomBytes(32);
    plant('the key-valued BACKUP_ENCRYPTION_KEY', key.toString('hex'), key.toString('base64'));
    for (const value of [key.toString('hex'), key.toString('base64')]) {
      const refused = await lifeline(['worker'], { ...process.env, ...setup.env, BACKUP_ENCRYPTION_KEY: value, LIFELINE_TASK_QUEUE: `sec-key-${Date.now()}` }, root, 30_000);
      assert.equal(refused.code, 1, refused.output);
      assert.match(refused.output, /BACKUP_ENCRYPTION_KEY holds what looks like a key itself \(the value is not shown\), not the path of a key file/);
      assertClean('the key error', refused.output);
    }
  });

  it('restore --target with a password is refused by the CLI before any workflow starts', async () => {
    const targetSecret = `Tgt-${randomBytes(9).toString('hex')}`;
    plant('the --target password', targetSecret);
    for (const target of [`postgresql://app:${targetSecret}@127.0.0.1:5432/scratch`, `postgresql://app@127.0.0.1:5432/scratch?sslmode=disable&password=${targetSecret}`]) {
      const refused = await lifeline(['restore', '--latest', '--db', 'sec_source', '--target', target], { ...process.env, ...setup.env });
      assert.equal(refused.code, 2, refused.output);
      assert.match(refused.output, /--target: the URL holds a password \(not shown; nothing was started\)/);
      assertClean('the --target error', refused.output);
    }
    await assertNothingLeaked();
  });
});
