import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from './net';
import { startServerProcess, stopProcess } from './server-process';

export interface LocalKms {
  endpoint: string;
  region: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** A seeded AES key and the alias that points at it, for `local-kms`'s seed file. */
export interface KmsSeedKey {
  keyId: string;
  /** 64 hex digits. */
  backingKey: string;
  alias?: string;
}

/**
 * local-kms (the AWS KMS API with real AES-GCM and encryption contexts) with its keys kept in
 * `dir`. It binds all interfaces; clients only ever use the loopback endpoint.
 */
export async function startLocalKms(binary: string, dir: string, seed: KmsSeedKey[] = [], port?: number): Promise<LocalKms> {
  const chosen = port ?? (await freePort());
  const dataDir = path.join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const seedFile = path.join(dir, 'seed.yaml');
  const aes = seed.map((k) => `      - Metadata:\n          KeyId: ${k.keyId}\n        BackingKeys:\n          - ${k.backingKey}\n`).join('');
  const aliases = seed.filter((k) => k.alias).map((k) => `  - AliasName: ${k.alias}\n    TargetKeyId: ${k.keyId}\n`).join('');
  writeFileSync(seedFile, `Keys:\n  Symmetric:\n    Aes:\n${aes || '      []\n'}${aliases ? `Aliases:\n${aliases}` : ''}`);
  const region = 'us-east-1';
  const child = await startServerProcess({
    what: 'local-kms',
    command: binary,
    args: [],
    env: { ...process.env, PORT: String(chosen), KMS_REGION: region, KMS_ACCOUNT_ID: '111122223333', KMS_DATA_PATH: dataDir, KMS_SEED_PATH: seedFile },
    logFile: path.join(dir, 'local-kms.log'),
    port: chosen,
  });
  return { endpoint: `http://127.0.0.1:${chosen}`, region, process: child, stop: () => stopProcess(child) };
}
