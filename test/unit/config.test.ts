import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import { configProblems } from '../harness/config-problems';

const cwd = () => mkdtempSync(path.join(tmpdir(), 'lifeline-config-'));

const problems = configProblems;

describe('configuration', () => {
  it('makes a one-database fleet from DATABASE_URL alone, with the runbook defaults', () => {
    const dir = cwd();
    const config = loadConfig({ cwd: dir, env: { DATABASE_URL: 'postgresql://app:pw@db.internal:5432/moneyflow' } });
    assert.equal(config.databases.length, 1);
    const [db] = config.databases;
    assert.equal(db!.name, 'moneyflow');
    assert.deepEqual(db!.schedule, { kind: 'daily', hour: 3, minute: 0 });
    assert.equal(db!.retentionDays, 30);
    assert.equal(config.compression.algorithm, 'zstd');
    assert.equal(config.parallelJobs, 2);
    assert.equal(config.temporal.taskQueue, 'lifeline');
    assert.equal(config.backupDir, path.join(dir, '.lifeline/backups'));
  });

  it('reads every seed variable', () => {
    const config = loadConfig({
      cwd: cwd(),
      env: {
        DATABASE_URL: 'postgres://u@h/db',
        BACKUP_DIR: '/secure/backups',
        BACKUP_RETENTION_DAYS: '45',
        BACKUP_ENCRYPTION_KEY: '/etc/lifeline/key',
        BACKUP_CIPHER: 'aes-256-cbc',
        BACKUP_COMPRESSION: 'gzip',
        BACKUP_COMPRESSION_LEVEL: '9',
        BACKUP_PARALLEL_JOBS: '4',
        BACKUP_WEBHOOK_URL: 'https://hooks.slack.com/services/x',
        BACKUP_EMAIL_NOTIFICATIONS: 'admin@company.com, dba@company.com',
        TEMPORAL_ADDRESS: 'temporal:7233',
        TEMPORAL_NAMESPACE: 'backups',
        LIFELINE_TASK_QUEUE: 'pg',
      },
    });
    assert.equal(config.backupDir, '/secure/backups');
    assert.equal(config.retentionDays, 45);
    assert.equal(config.encryption.keyFile, '/etc/lifeline/key');
    assert.deepEqual(config.compression, { algorithm: 'gzip', level: 9 });
    assert.equal(config.parallelJobs, 4);
    assert.deepEqual(config.notifications.email, ['admin@company.com', 'dba@company.com']);
    assert.deepEqual(config.temporal, {
      address: 'temporal:7233',
      namespace: 'backups',
      taskQueue: 'pg',
      longTaskQueue: 'pg-long',
      slots: { long: 4, short: 8 }, // BACKUP_PARALLEL_JOBS, and max(4, 2 × jobs)
      tls: undefined,
      apiKey: undefined,
    });
  });

  it('lists every bad value at once, naming the variable, the value and what is allowed', () => {
    const found = problems(() =>
      loadConfig({
        cwd: cwd(),
        env: {
          DATABASE_URL: 'mysql://x/y',
          BACKUP_RETENTION_DAYS: 'thirty',
          BACKUP_COMPRESSION: 'lz4',
          BACKUP_PARALLEL_JOBS: '0',
          BACKUP_WEBHOOK_URL: 'ftp://x',
          TEMPORAL_ADDRESS: 'nohost',
        },
      }),
    );
    const text = found.join('\n');
    assert.equal(found.length, 6, text);
    assert.match(text, /DATABASE_URL = "mysql:\/\/x\/y": must use postgresql:\/\//);
    assert.match(text, /BACKUP_RETENTION_DAYS = "thirty": must be a whole number from 1 to 36500/);
    assert.match(text, /BACKUP_COMPRESSION = "lz4": must be zstd or gzip/);
    assert.match(text, /BACKUP_PARALLEL_JOBS = "0": must be a whole number from 1 to 64/);
    assert.match(text, /BACKUP_WEBHOOK_URL = "ftp:\/\/x": must be an http/);
    assert.match(text, /TEMPORAL_ADDRESS = "nohost": must be host:port/);
  });

  it('checks the compression level against the algorithm', () => {
    const found = problems(() => loadConfig({ cwd: cwd(), env: { DATABASE_URL: 'postgresql://u@h/d', BACKUP_COMPRESSION: 'gzip', BACKUP_COMPRESSION_LEVEL: '12' } }));
    assert.deepEqual(found, ['BACKUP_COMPRESSION_LEVEL = "12": must be from 1 to 9 for gzip']);
  });

  it('refuses a database URL that names its database twice, or holds a secret ps would show', () => {
    const twice = problems(() => loadConfig({ cwd: cwd(), env: { DATABASE_URL: 'postgresql://u@h/moneyflow?dbname=other' } }));
    assert.equal(twice.length, 1);
    assert.match(twice[0]!, /^DATABASE_URL = .*"dbname", a database name beside the path's/);
    const ssl = problems(() => loadConfig({ cwd: cwd(), env: { DATABASE_URL: 'postgresql://u@h/moneyflow?sslpassword=Tz8-passphrase' } }));
    assert.equal(ssl.length, 1);
    assert.match(ssl[0]!, /sslpassword, a secret that pg_dump would show/);
    assert.doesNotMatch(ssl[0]!, /Tz8-passphrase/);
  });

  it('says what to do when no database is configured', () => {
    const [problem] = problems(() => loadConfig({ cwd: cwd(), env: {} }));
    assert.match(problem!, /set DATABASE_URL/);
  });

  it('reads a fleet from lifeline.config.yaml and points at the bad entries', () => {
    const dir = cwd();
    writeFileSync(
      path.join(dir, 'lifeline.config.yaml'),
      `databases:
  - name: moneyflow
    url: postgresql://app@db:5432/moneyflow
    passwordEnv: MONEYFLOW_PASSWORD
    production: true
  - name: ledger
    urlEnv: LEDGER_URL
    schedule: "0 */6 * * *"
    retentionDays: 7
`,
    );
    const config = loadConfig({ cwd: dir, env: { LEDGER_URL: 'postgresql://l@db/ledger' } });
    assert.deepEqual(config.databases.map((d) => d.name), ['moneyflow', 'ledger']);
    assert.equal(config.databases[0]!.allowForceRestore, false);
    assert.deepEqual(config.databases[1]!.schedule, { kind: 'cron', expression: '0 */6 * * *' });
    assert.equal(config.databases[1]!.retentionDays, 7);

    writeFileSync(
      path.join(dir, 'lifeline.config.yaml'),
      `databases:
  - name: "bad name"
    url: postgresql://app@db/x
    schedule: "25:00"
  - name: ok
    urlEnv: MISSING_URL
retention: 3
`,
    );
    const found = problems(() => loadConfig({ cwd: dir, env: {} })).join('\n');
    assert.match(found, /unknown key "retention"/);
    assert.match(found, /databases\[0\]\.name = "bad name": must be 1-63 letters/);
    assert.match(found, /databases\[0\]\.schedule = "25:00": must be "HH:MM"/);
  });
});
