import { createWriteStream, existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { openBackup } from '../../backup/read-backup';
import { parseManifest } from '../../catalog/manifest';
import { MANIFEST_SUFFIX } from '../../catalog/naming';
import { loadConfig } from '../../config/load';
import { LocalKeyFileProvider } from '../../crypto/keys/local-key-file';
import { IntegrityError, UsageError } from '../../errors';
import { runPipeline } from '../../pipeline/run';
import { LocalStorage } from '../../storage/local';
import type { Command } from '../command';

/**
 * Recovery without Temporal, a database or the catalog: a backup file, its manifest beside it and
 * the key are enough to get the plain pg_dump archive back (then `pg_restore` it).
 */
export const decryptCommand: Command = {
  name: 'decrypt',
  summary: 'turn a backup file back into a plain pg_dump archive (needs only the file, its manifest and the key)',
  usage: 'lifeline decrypt FILE [-o OUT] [--key KEYFILE]',
  details: `  FILE           the .dump.<zst|gz>.enc file; its .manifest.json must be beside it
  -o, --output   where to write the archive (default: standard output, for a pipe into pg_restore)
  --key KEYFILE  the master key file (default: BACKUP_ENCRYPTION_KEY, else .lifeline/keys/master.key)
  Example: lifeline decrypt moneyflow_backup_20261126_030000.dump.zst.enc | pg_restore -d postgresql://…/moneyflow`,
  options: { output: { type: 'string', short: 'o' }, key: { type: 'string' } },
  allowPositionals: true,
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('give one backup file');
    const file = path.resolve(positionals[0]!);
    const match = /^(.*)\.dump\.(zst|gz)\.enc$/.exec(path.basename(file));
    if (!match) throw new UsageError(`${file} is not a backup file (<id>.dump.zst.enc or <id>.dump.gz.enc)`);
    const manifestFile = path.join(path.dirname(file), `${match[1]}${MANIFEST_SUFFIX}`);
    if (!existsSync(manifestFile)) throw new UsageError(`no manifest beside the backup: ${manifestFile} (it holds the wrapped key)`);
    const manifest = parseManifest(readFileSync(manifestFile, 'utf8'), manifestFile);
    const keyFile = values.key ? path.resolve(values.key as string) : loadConfig({ requireDatabases: false }).encryption.keyFile;
    if (values.output === undefined && process.stdout.isTTY) throw new UsageError('refusing to write a binary archive to a terminal: use -o FILE or a pipe');

    // Read the file where it is, whatever folder it was copied into.
    const storage = new LocalStorage('file', path.dirname(file));
    const chain = await openBackup(storage, { ...manifest, object: { storage: 'file', key: path.basename(file) } }, new LocalKeyFileProvider(keyFile));
    const out = values.output ? createWriteStream(path.resolve(values.output as string), { mode: 0o600 }) : process.stdout;
    try {
      await runPipeline([...chain.stages, out]);
      if (chain.raw.sha256() !== manifest.rawSha256) {
        throw new IntegrityError(`the decrypted archive differs from the one pg_dump wrote (SHA-256 ${chain.raw.sha256()}, manifest ${manifest.rawSha256})`);
      }
    } catch (err) {
      if (values.output) rmSync(path.resolve(values.output as string), { force: true });
      throw err;
    }
    process.stderr.write(`${manifest.id}: ${chain.raw.bytes} bytes of pg_dump archive, SHA-256 matches the manifest.\n`);
    return 0;
  },
};
