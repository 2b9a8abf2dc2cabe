import { CreateAliasCommand, CreateKeyCommand, DescribeKeyCommand, DisableKeyCommand, EnableKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { allStorages } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import { Catalog } from '../../src/catalog/catalog';
import { currentWrapping } from '../../src/catalog/key-envelope';
import type { LifelineConfig } from '../../src/config/config';
import { loadConfig } from '../../src/config/load';
import { codecKeysFor } from '../../src/crypto/codec-keys';
import { keyringFor } from '../../src/crypto/keys';
import { keyringDir } from '../../src/crypto/keys/local-key-file';
import { rootCauseMessage } from '../../src/errors';
import {
  BACKUP_WORKFLOW_TYPE,
  KEY_ROTATION_WORKFLOW_TYPE,
  RESTORE_WORKFLOW_TYPE,
  type BackupWorkflowResult,
  type KeyRotationWorkflowResult,
  type RestoreWorkflowResult,
} from '../../workflows/definitions';
import { contentOf } from '../harness/compare';
import { s3Destination, seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { runWorker, testClient } from '../harness/worker';
import { SEEDED_KMS_KEY, testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

/** Every verified backup everywhere, with the key id that opens it now. */
async function wrappings(config: LifelineConfig): Promise<Array<{ where: string; id: string; keyId: string; provider: string }>> {
  const out = [];
  for (const db of config.databases) {
    for (const storage of allStorages(config, db)) {
      for (const m of await new Catalog(storage).list(db.name)) {
        const w = await currentWrapping(storage, m);
        out.push({ where: storage.name, id: m.id, keyId: w.keyId, provider: w.provider });
      }
    }
  }
  return out;
}

async function verifyEverywhere(config: LifelineConfig): Promise<number> {
  let n = 0;
  for (const db of config.databases) {
    for (const storage of allStorages(config, db)) {
      for (const m of await new Catalog(storage).list(db.name)) {
        await verifyBackup(storage, m, keyringFor(config));
        n++;
      }
    }
  }
  return n;
}

describe('KMS key provider and key rotation (local-kms, versitygw)', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let kmsConfig: LifelineConfig;
  let client: Client;
  let kms: KMSClient;
  let stop: () => Promise<void>;
  let firstKeyArn: string;
  const alias = `alias/lifeline-it-${Date.now()}`;
  const admin = (db = 'ks_source') => servers.cluster.adminUrl(db);
  const execute = <R>(type: string, input: unknown, workflowId = `ks-${type}-${Date.now()}`) =>
    client.workflow.execute(type, { taskQueue: kmsConfig.temporal.taskQueue, workflowId, args: [input] }) as Promise<R>;

  const startWorker = async (config: LifelineConfig) => {
    stop = await runWorker(config);
  };
  const stopWorker = () => stop();

  before(async () => {
    servers = await testServers();
    // KMS credentials come from the standard AWS environment; local-kms accepts any.
    process.env.AWS_ACCESS_KEY_ID ??= 'lifeline-test';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'lifeline-test';
    kms = new KMSClient({ endpoint: servers.kms.endpoint, region: servers.kms.region });
    const seeded = await kms.send(new DescribeKeyCommand({ KeyId: SEEDED_KMS_KEY.alias }));
    assert.equal(seeded.KeyMetadata?.KeyId, SEEDED_KMS_KEY.keyId, 'local-kms answers with its seeded key');
    const created = await kms.send(new CreateKeyCommand({ Description: 'lifeline integration test' }));
    firstKeyArn = created.KeyMetadata!.Arn!;
    await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: created.KeyMetadata!.KeyId! }));

    const source = await seededDatabase(servers, 'ks_source');
    await servers.cluster.sql('ALTER ROLE ks_source_owner CREATEDB');
    await servers.cluster.sql('GRANT pg_signal_backend TO ks_source_owner');
    setup = await testConfig(servers, 'keys', [{ name: 'ks_source', url: source.url, production: false, allowForceRestore: true }], {
      destinations: [await s3Destination(servers.s3, 'offsite', 'ks-offsite')],
      // Without BACKUP_KMS_KEY_ID (local key file for new backups) the KMS backups still open: their keys are allowed.
      env: { BACKUP_KMS_ENDPOINT: servers.kms.endpoint, BACKUP_KMS_REGION: servers.kms.region, BACKUP_KMS_ALLOWED_KEYS: firstKeyArn.replace(/key\/.*$/, 'key/*') },
    });
    kmsConfig = loadConfig({ cwd: setup.dir, env: { ...setup.env, BACKUP_KMS_KEY_ID: alias } });
    client = await testClient(servers, setup.config);
    // One backup under the local key file first: switching providers must not strand it.
    await startWorker(setup.config);
    await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, { database: 'ks_source' });
    await stopWorker();
    await startWorker(kmsConfig);
  });

  after(async () => {
    await stopWorker();
    await client?.connection.close();
    kms?.destroy();
  });

  it('backs up under a KMS data key bound to database and backup id, and restores from it', async () => {
    const backup = await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, { database: 'ks_source' });
    const manifest = await new Catalog(allStorages(kmsConfig, kmsConfig.databases[0]!)[0]!).get(backup.backupId);
    assert.equal(manifest.encryption.keyProvider, 'kms');
    assert.equal(manifest.encryption.keyId, firstKeyArn);
    const atBackup = await contentOf(admin());
    await servers.cluster.sql('DELETE FROM public.transactions', 'ks_source');
    const restored = await execute<RestoreWorkflowResult>(RESTORE_WORKFLOW_TYPE, { database: 'ks_source', backup: backup.backupId, force: true, requestedBy: 'test' });
    assert.equal(restored.outcome, 'restored');
    assert.deepEqual(await contentOf(admin()), atBackup);
  });

  it('refuses a data key presented with another backup id (wrong encryption context), naming the key', async () => {
    const [older, newer] = (await new Catalog(allStorages(kmsConfig, kmsConfig.databases[0]!)[0]!).list('ks_source')).filter((m) => m.encryption.keyProvider === 'kms');
    assert.ok(older && newer);
    const wrapping = { provider: 'kms' as const, keyId: older.encryption.keyId, wrappedKey: older.encryption.wrappedKey };
    await assert.rejects(keyringFor(kmsConfig).unwrap(wrapping, { database: 'ks_source', backupId: newer.id }), (err: Error) => {
      assert.equal(err.name, 'WrongKey');
      assert.match(err.message, new RegExp(`KMS key ${firstKeyArn.replace(/[/]/g, '\\/')}.*encryption context differs`));
      return true;
    });
  });

  it('fails at once, naming the key, when the KMS key is disabled', async () => {
    const keyId = firstKeyArn.split('/').pop()!;
    await kms.send(new DisableKeyCommand({ KeyId: keyId }));
    try {
      const started = Date.now();
      await assert.rejects(execute(BACKUP_WORKFLOW_TYPE, { database: 'ks_source' }), (err: unknown) => {
        assert.ok(err instanceof WorkflowFailedError);
        assert.match(rootCauseMessage(err), new RegExp(`${firstKeyArn.replace(/[/]/g, '\\/')} is Disabled[\\s\\S]*enable it`));
        return true;
      });
      assert.ok(Date.now() - started < 20_000, 'not retried: a disabled key needs a person');
      const [manifest] = (await new Catalog(allStorages(kmsConfig, kmsConfig.databases[0]!)[0]!).list('ks_source')).filter((m) => m.encryption.keyProvider === 'kms');
      await assert.rejects(verifyBackup(allStorages(kmsConfig, kmsConfig.databases[0]!)[0]!, manifest!, keyringFor(kmsConfig)), (err: Error & { hint?: string }) => {
        assert.equal(err.name, 'KeyDisabled');
        assert.match(err.message, new RegExp(`KMS key ${firstKeyArn.replace(/[/]/g, '\\/')} failed: DisabledException`));
        assert.match(err.hint ?? '', /enable/);
        return true;
      });
    } finally {
      await kms.send(new EnableKeyCommand({ KeyId: keyId }));
    }
  });

  it('rotates: a new KMS key behind the alias, every backup everywhere re-wrapped, old and new backups open', async () => {
    // Replicas too: the offsite copies have their own key envelopes.
    const before = await wrappings(kmsConfig);
    assert.ok(before.some((w) => w.provider === 'local') && before.some((w) => w.provider === 'kms'));
    assert.ok(before.some((w) => w.where === 'offsite'));
    const workflowId = `ks-rotation-${Date.now()}`;
    const result = await execute<KeyRotationWorkflowResult>(KEY_ROTATION_WORKFLOW_TYPE, { requestedBy: 'test' }, workflowId);
    assert.equal(result.previousKeyId, firstKeyArn);
    assert.notEqual(result.keyId, firstKeyArn);
    assert.equal(result.rewrapped, before.length);
    const aliased = await kms.send(new DescribeKeyCommand({ KeyId: alias }));
    assert.equal(aliased.KeyMetadata?.Arn, result.keyId, 'the alias points at the new key');
    assert.deepEqual(new Set((await wrappings(kmsConfig)).map((w) => w.keyId)), new Set([result.keyId]));
    assert.equal(await verifyEverywhere(kmsConfig), before.length, 'every backup still decrypts');

    // A repeat finds nothing to do; a new backup uses the new key.
    const again = await execute<KeyRotationWorkflowResult>(KEY_ROTATION_WORKFLOW_TYPE, { requestedBy: 'test' }, workflowId + '-again');
    assert.notEqual(again.keyId, result.keyId);
    assert.equal(again.rewrapped, before.length);
    const fresh = await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, { database: 'ks_source' });
    const manifest = await new Catalog(allStorages(kmsConfig, kmsConfig.databases[0]!)[0]!).get(fresh.backupId);
    assert.equal(manifest.encryption.keyId, again.keyId);

    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'keys', 'status', '--json'], {
      cwd: root,
      env: { ...process.env, ...setup.env, BACKUP_KMS_KEY_ID: alias },
    });
    const status = JSON.parse(stdout) as { currentKeyId: string; keys: Array<{ keyId: string; current: boolean; backups: Record<string, string[]> }> };
    assert.equal(status.currentKeyId, again.keyId);
    assert.deepEqual(status.keys.map((k) => k.keyId), [again.keyId]);
    if (process.env.LIFELINE_RECORD_HISTORY) {
      writeFileSync(path.join(__dirname, '..', 'replay', 'histories', 'key-rotation.json'), historyToJSON(await client.workflow.getHandle(workflowId).fetchHistory()));
    }
  });

  it('rotates a local key file: the old key moves to the keyring, old backups still open, new ones use the new key', async () => {
    await stopWorker();
    await startWorker(setup.config);
    const before = await wrappings(setup.config);
    const result = await execute<KeyRotationWorkflowResult>(KEY_ROTATION_WORKFLOW_TYPE, { requestedBy: 'test' });
    assert.match(result.keyId, /^local:[0-9a-f]{16}$/);
    assert.equal(result.rewrapped, before.length);
    const kept = readdirSync(keyringDir(setup.config.encryption.keyFile));
    assert.ok(kept.includes(`${result.previousKeyId.replace(':', '-')}.key`), 'the previous key is kept');
    assert.ok(existsSync(setup.config.encryption.keyFile));
    assert.deepEqual(new Set((await wrappings(setup.config)).map((w) => w.keyId)), new Set([result.keyId]));
    assert.equal(await verifyEverywhere(setup.config), before.length);
    // The payload codec's keys: all re-wrapped under the new master key, a new one made under it, which
    // encrypts what the workflows send from now on; the history of the backups before still decodes.
    const codecKeys = await codecKeysFor(setup.config).records();
    assert.ok(codecKeys.length >= 2);
    assert.deepEqual(new Set(codecKeys.map((k) => k.keyId)), new Set([result.keyId]));
    assert.equal(codecKeys.at(-1)!.createdUnder, result.keyId);
    const keyIdOfInput = async (workflowId: string) => {
      const first = (await client.workflow.getHandle(workflowId).fetchHistory()).events![0]!;
      const payload = first.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
      return Buffer.from(payload.metadata!['encryption-key-id']!).toString();
    };
    const workflowId = `ks-after-rotation-${Date.now()}`;
    await execute<BackupWorkflowResult>(BACKUP_WORKFLOW_TYPE, { database: 'ks_source' }, workflowId);
    assert.equal(await keyIdOfInput(workflowId), codecKeys.at(-1)!.codecKeyId);
  });
});
