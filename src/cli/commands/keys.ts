import { createKeyFile } from '../../crypto/keys/local-key-file';
import { UsageError } from '../../errors';
import type { Command } from '../command';
import { loadConfig } from '../../config/load';
import path from 'node:path';

export const keysCommand: Command = {
  name: 'keys',
  summary: 'create the local master key file (init)',
  usage: 'lifeline keys init [--file PATH]',
  details: `  --file PATH   where to write it (default: BACKUP_ENCRYPTION_KEY, else .lifeline/keys/master.key)`,
  options: { file: { type: 'string' } },
  allowPositionals: true,
  async run({ values, positionals }) {
    if (positionals[0] !== 'init') throw new UsageError('say `lifeline keys init`');
    // A key can be made before any database is configured.
    const file = values.file ? path.resolve(values.file as string) : loadConfig({ requireDatabases: false }).encryption.keyFile;
    const keyId = await createKeyFile(file);
    process.stdout.write(
      `Created ${file} (mode 0600), key id ${keyId}.\n` +
        'Keep a copy of this file somewhere other than the backups: without it they cannot be decrypted.\n',
    );
    return 0;
  },
};
