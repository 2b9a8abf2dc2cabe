/** A backup as an operator holds it after losing the server, and `lifeline decrypt` run on it. */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { catalogBackup } from '../../src/backup/catalog-backup';
import { dumpToRepository } from '../../src/backup/dump';
import { localStorageFor } from '../../src/backup/repository';
import { verifyBackup } from '../../src/backup/verify';
import type { DumpRecord } from '../../src/catalog/manifest';
import { backupId, manifestKey } from '../../src/catalog/naming';
import { keyringFor } from '../../src/crypto/keys';
import { storedObjects } from '../../src/parts/parts-of';
import { seededDatabase, testConfig } from './fixtures';
import type { TestServers } from './servers';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

export interface RecoveredCopy {
  /** The flat folder holding the data object and its manifest. */
  folder: string;
  file: string;
  keyFile: string;
  record: DumpRecord;
}

/**
 * A verified, catalogued backup of a new seeded database, copied with its manifest into an empty
 * folder, as if fetched from offsite onto a new machine: every object of it (the data file, and the
 * parts of a backup in the parts format), in the format asked (default: the configured default).
 */
export async function recoveredCopy(servers: TestServers, database: string, options: { format?: 'parts' | 'stream' } = {}): Promise<RecoveredCopy> {
  const source = await seededDatabase(servers, database);
  const setup = await testConfig(servers, database, [{ name: database, url: source.url }], { env: options.format ? { BACKUP_FORMAT: options.format } : {} });
  const db = setup.config.databases[0]!;
  const keys = keyringFor(setup.config);
  const record = await dumpToRepository(setup.config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
  const { verification } = await verifyBackup(localStorageFor(db), record, keys);
  await catalogBackup(db, record, verification, 'test', keys);
  const folder = mkdtempSync(path.join(tmpdir(), 'lifeline-recovered-'));
  const file = path.join(folder, path.basename(record.object.key));
  for (const object of storedObjects(record)) copyFileSync(localStorageFor(db).describe(object.key), path.join(folder, path.basename(object.key)));
  copyFileSync(localStorageFor(db).describe(manifestKey(db.name, record.id)), path.join(folder, `${record.id}.manifest.json`));
  return { folder, file, keyFile: setup.env.BACKUP_ENCRYPTION_KEY!, record };
}

/** `lifeline decrypt ARGS` with only a key file: no Temporal anywhere. Output as Buffers (it may be an archive). */
export function lifelineDecrypt(args: string[], keyFile: string) {
  return run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'decrypt', ...args], {
    cwd: root,
    env: { ...process.env, BACKUP_ENCRYPTION_KEY: keyFile, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    maxBuffer: 64 * 1024 * 1024,
    encoding: 'buffer',
  });
}
