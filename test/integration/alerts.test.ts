import { WorkflowFailedError, type Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { codecKeyDir } from '../../src/crypto/codec-keys';
import { freePort } from '../../src/infra/net';
import { BACKUP_WORKFLOW_TYPE, RPO_WATCHDOG_WORKFLOW_TYPE, type BackupWorkflowResult } from '../../workflows/definitions';
import type { RpoCheck } from '../../src/alerts/conditions';
import { nextSecond, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { runWorker, testClient } from '../harness/worker';
import { webhookReceiver, type Posted } from '../harness/webhook-receiver';
import { testServers, type TestServers } from '../harness/servers';

interface Mail {
  to: string[];
  raw: string;
}

describe('alerts reach a real webhook receiver and a real SMTP server', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let receiver: Awaited<ReturnType<typeof webhookReceiver>>;
  let smtp: SMTPServer;
  let posts: Posted[] = [];
  const mails: Mail[] = [];
  const execute = <R>(type: string, args: unknown[]) =>
    client.workflow.execute(type, { taskQueue: setup.config.temporal.taskQueue, workflowId: `al-${type}-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`, args }) as Promise<R>;
  const events = () => posts.map((p) => `${p.lifeline.severity} ${p.lifeline.event}`);
  // Long header lines are folded (RFC 5322): unfold before reading one.
  const header = (mail: Mail, name: string) => new RegExp(`^${name}: (.*)$`, 'mi').exec(mail.raw.replace(/\r?\n[ \t]+/g, ' '))?.[1]?.trim();

  before(async () => {
    servers = await testServers();
    receiver = await webhookReceiver();
    posts = receiver.posts;
    const smtpPort = await freePort();
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, session, done) {
        let raw = '';
        stream.on('data', (d) => (raw += d));
        stream.on('end', () => {
          mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw });
          done();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(smtpPort, '127.0.0.1', r));

    const source = await seededDatabase(servers, 'al_source', { users: 20, transactions: 500 });
    const never = await seededDatabase(servers, 'al_never', { users: 5, transactions: 10 });
    setup = await testConfig(
      servers,
      'alerts',
      [
        { name: 'al_source', url: source.url },
        { name: 'al_never', url: never.url, schedule: 'off' },
      ],
      {
        env: {
          BACKUP_WEBHOOK_URL: receiver.url,
          BACKUP_EMAIL_NOTIFICATIONS: 'oncall@moneyflow.example, dba@moneyflow.example',
          BACKUP_SMTP_HOST: '127.0.0.1',
          BACKUP_SMTP_PORT: String(smtpPort),
          BACKUP_SMTP_FROM: 'lifeline@moneyflow.example',
        },
      },
    );
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
    receiver?.close();
    await new Promise<void>((r) => (smtp ? smtp.close(() => r()) : r()));
  });

  it('sends the completion notice to both channels, with severity and content', async () => {
    const result = await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, [{ database: 'al_source' }]);
    assert.deepEqual(events(), ['info backup.succeeded']);
    assert.match(posts[0]!.text, new RegExp(`Backup ${result.backupId} verified`));
    assert.equal(mails.length, 1);
    assert.deepEqual(mails[0]!.to.sort(), ['dba@moneyflow.example', 'oncall@moneyflow.example']);
    assert.equal(header(mails[0]!, 'Subject'), `[Lifeline] Backup ${result.backupId} verified`);
    assert.equal(header(mails[0]!, 'X-Lifeline-Severity'), 'info');
  });

  it('raises one warning for a backup over 20% larger than the previous one', async () => {
    posts.length = 0;
    mails.length = 0;
    await servers.cluster.sql(`INSERT INTO public.transactions (account_id, category_id, amount, occurred_at, memo)
      SELECT account_id, category_id, amount, occurred_at, memo || ' (copy)' FROM public.transactions`, 'al_source');
    await nextSecond();
    const result = await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, [{ database: 'al_source' }]);
    assert.deepEqual(events(), ['warning backup.size-anomaly', 'info backup.succeeded']);
    assert.match(posts[0]!.lifeline.title, new RegExp(`Backup ${result.backupId} is \\+\\d+% the size of the previous one`));
    const warning = mails.find((m) => header(m, 'X-Lifeline-Severity') === 'warning');
    assert.match(header(warning!, 'Subject') ?? '', /^\[Lifeline WARNING\] Backup .* is \+\d+% the size/);
  });

  it('raises one critical RPO alert for a database without a verified backup, however often the watchdog runs', async () => {
    posts.length = 0;
    mails.length = 0;
    const first = await execute<RpoCheck[]>(RPO_WATCHDOG_WORKFLOW_TYPE, []);
    await execute<RpoCheck[]>(RPO_WATCHDOG_WORKFLOW_TYPE, []);
    await execute<RpoCheck[]>(RPO_WATCHDOG_WORKFLOW_TYPE, []);
    assert.deepEqual(first.map((c) => [c.database, c.breached]), [['al_source', false], ['al_never', true]]);
    assert.deepEqual(events(), ['critical rpo.breached']);
    assert.equal(posts[0]!.lifeline.database, 'al_never');
    assert.equal(mails.length, 1);
    assert.match(header(mails[0]!, 'Subject') ?? '', /^\[Lifeline CRITICAL\] RPO breached for al_never: no verified backup/);

    // A backup clears it: one "met again" notice, then silence.
    await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, [{ database: 'al_never' }]);
    posts.length = 0;
    await execute<RpoCheck[]>(RPO_WATCHDOG_WORKFLOW_TYPE, []);
    await execute<RpoCheck[]>(RPO_WATCHDOG_WORKFLOW_TYPE, []);
    assert.deepEqual(events(), ['info rpo.ok']);
  });

  it('raises one low-space warning while the repository stays below the threshold', async () => {
    const tight = await testConfig(servers, 'alerts-space', [{ name: 'al_source', url: setup.config.databases[0]!.url }], {
      env: { BACKUP_WEBHOOK_URL: setup.env.BACKUP_WEBHOOK_URL!, BACKUP_MIN_FREE_PERCENT: '99', BACKUP_NOTIFY_SUCCESS: 'false' },
    });
    const stopSpaceWorker = await runWorker(tight.config);
    posts.length = 0;
    try {
      for (let i = 0; i < 2; i++) {
        await client.workflow.execute(BACKUP_WORKFLOW_TYPE, { taskQueue: tight.config.temporal.taskQueue, workflowId: `al-space-${Date.now()}-${i}`, args: [{ database: 'al_source' }] });
        await new Promise((r) => setTimeout(r, 1100)); // backup ids have one-second resolution
      }
    } finally {
      await stopSpaceWorker();
    }
    // No completion notices (BACKUP_NOTIFY_SUCCESS=false): only the one warning.
    assert.deepEqual(events(), ['warning storage.low-space']);
    assert.match(posts[0]!.lifeline.title, /is low on space: [\d.]+% free/);
  });

  it('says "encryption failed" when the key cannot be used', async () => {
    posts.length = 0;
    const broken = await testConfig(servers, 'alerts-key', [{ name: 'al_source', url: setup.config.databases[0]!.url }], {
      env: { ...Object.fromEntries(Object.entries(setup.env).filter(([k]) => k.startsWith('BACKUP_') && k !== 'BACKUP_DIR' && k !== 'BACKUP_ENCRYPTION_KEY')), BACKUP_ENCRYPTION_KEY: '/nonexistent/master.key' },
    });
    // The key file went missing after the worker had opened its payload codec key (which it keeps
    // in memory, by id): the workflow still runs, and the backup's own step says why it cannot encrypt.
    cpSync(codecKeyDir(setup.config.backupDir), codecKeyDir(broken.config.backupDir), { recursive: true });
    const stopKeyWorker = await runWorker(broken.config);
    try {
      await assert.rejects(
        client.workflow.execute(BACKUP_WORKFLOW_TYPE, { taskQueue: broken.config.temporal.taskQueue, workflowId: `al-key-${Date.now()}`, args: [{ database: 'al_source' }] }),
        WorkflowFailedError,
      );
    } finally {
      await stopKeyWorker();
    }
    const critical = posts.find((p) => p.lifeline.event === 'encryption.failed');
    assert.equal(critical?.lifeline.severity, 'critical');
    assert.match(critical!.text, /cannot read key file \/nonexistent\/master\.key/);
  });
});
