import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import { configProblems } from '../harness/config-problems';

const DB = { DATABASE_URL: 'postgresql://app@db.internal:5432/moneyflow' };

const problems = configProblems;

describe('destinations and KMS configuration', () => {
  it('makes the offsite destination from BACKUP_S3_* and the archive from BACKUP_ARCHIVE_DIR', () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'lifeline-config-'));
    const config = loadConfig({
      cwd,
      env: {
        ...DB,
        BACKUP_S3_BUCKET: 'company-backups',
        BACKUP_S3_PREFIX: 'moneyflow',
        BACKUP_S3_ENDPOINT: 'http://127.0.0.1:7070',
        BACKUP_S3_STORAGE_CLASS: 'STANDARD_IA',
        BACKUP_S3_OBJECT_LOCK_DAYS: '30',
        BACKUP_S3_ACCESS_KEY_ID: 'AK',
        BACKUP_S3_SECRET_ACCESS_KEY: 'SK',
        BACKUP_ARCHIVE_DIR: 'archive',
        BACKUP_KMS_KEY_ID: 'alias/lifeline',
        BACKUP_KMS_REGION: 'eu-west-1',
      },
    });
    assert.deepEqual(config.destinations, [
      {
        name: 'offsite',
        kind: 's3',
        bucket: 'company-backups',
        prefix: 'moneyflow',
        endpoint: 'http://127.0.0.1:7070',
        region: 'us-east-1',
        forcePathStyle: true,
        storageClass: 'STANDARD_IA',
        serverSideEncryption: undefined,
        sseKmsKeyId: undefined,
        objectLock: { mode: 'GOVERNANCE', days: 30 },
        retentionDays: undefined,
        // The defaults of BACKUP_CONNECT_TIMEOUT and BACKUP_REQUEST_TIMEOUT.
        network: { connectSeconds: 10, idleSeconds: 120 },
        // Names of the variables, never their values.
        credentialsEnv: { accessKeyId: 'BACKUP_S3_ACCESS_KEY_ID', secretAccessKey: 'BACKUP_S3_SECRET_ACCESS_KEY' },
      },
      { name: 'archive', kind: 'local', path: path.join(cwd, 'archive'), retentionDays: undefined },
    ]);
    assert.deepEqual(config.encryption.kms, { keyId: 'alias/lifeline', endpoint: undefined, region: 'eu-west-1', allowedKeyIds: [], network: { connectSeconds: 10, idleSeconds: 120 } });
  });

  it('has no destinations and the local key file by default', () => {
    const config = loadConfig({ cwd: mkdtempSync(path.join(tmpdir(), 'lifeline-config-')), env: DB });
    assert.deepEqual(config.destinations, []);
    assert.equal(config.encryption.kms.keyId, undefined);
    assert.equal(config.keyRotation, 'quarterly');
  });

  it('names each bad destination field, its value and what is allowed', () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'lifeline-config-'));
    writeFileSync(
      path.join(cwd, 'lifeline.config.json'),
      JSON.stringify({
        destinations: [
          { name: 'offsite', type: 's3', bucket: 'Bad_Bucket', storageClass: 'COLD', prefix: '/x/' },
          { name: 'local', type: 'local', path: '/mnt/a' },
          { name: 'tape', type: 'ftp' },
          { name: 'vault', type: 's3', bucket: 'vault-bucket', accessKeyIdEnv: 'VAULT_KEY' },
        ],
      }),
    );
    const found = problems(() => loadConfig({ cwd, env: { ...DB, BACKUP_KMS_KEY_ID: 'my key' } }));
    const text = found.join('\n');
    assert.match(text, /destinations\[0\]\.bucket = "Bad_Bucket": must be an S3 bucket name/);
    assert.match(text, /destinations\[0\]\.storageClass = "COLD": must be one of STANDARD, /);
    assert.match(text, /destinations\[0\]\.prefix = "\/x\/": must not start or end with "\/"/);
    assert.match(text, /destinations\[1\]\.name = "local": "local" is the name of the local repository/);
    assert.match(text, /destinations\[2\]\.type = "ftp": must have type "local" \(with path\) or "s3" \(with bucket\)/);
    assert.match(text, /BACKUP_KMS_KEY_ID = "my key": must be a KMS key id, key ARN, alias\/NAME or alias ARN/);
  });

  it('asks for both credential variables of a destination, and for them to be set', () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'lifeline-config-'));
    writeFileSync(
      path.join(cwd, 'lifeline.config.json'),
      JSON.stringify({ destinations: [{ name: 'vault', type: 's3', bucket: 'vault-bucket', accessKeyIdEnv: 'VAULT_KEY' }] }),
    );
    const found = problems(() => loadConfig({ cwd, env: DB }));
    assert.deepEqual(found, [
      'lifeline.config.json: destinations[0]: set both accessKeyIdEnv and secretAccessKeyEnv, or neither (the AWS default credentials)',
      'destination vault: environment variable VAULT_KEY is not set',
    ]);
  });
});
