import { catalogFor } from '../../backup/repository';
import type { Command } from '../command';
import { config, dbOption, jsonOption, selectDatabases } from '../common';
import { formatBytes, printJson, table } from '../output';

export const listCommand: Command = {
  name: 'list',
  summary: 'list verified backups (reads the repository; no Temporal needed)',
  usage: 'lifeline list [--db NAME] [--json]',
  options: { ...dbOption, ...jsonOption },
  async run({ values }) {
    const cfg = config();
    const manifests = [];
    for (const db of selectDatabases(cfg, values.db as string | undefined)) manifests.push(...(await catalogFor(db).list(db.name)));
    if (values.json) {
      printJson(manifests.map(({ encryption: { wrappedKey: _omit, ...encryption }, ...m }) => ({ ...m, encryption })));
      return 0;
    }
    if (manifests.length === 0) {
      process.stdout.write('No backups yet. Take one with `lifeline backup --wait`.\n');
      return 0;
    }
    process.stdout.write(
      table(
        ['ID', 'TYPE', 'TAKEN (UTC)', 'DUMP', 'STORED', 'TABLES', 'KEY'],
        manifests.map((m) => [
          m.id,
          m.type,
          m.startedAt.replace('T', ' ').slice(0, 19),
          formatBytes(m.sizes.rawBytes),
          formatBytes(m.sizes.storedBytes),
          String(m.tables.length),
          m.encryption.keyId,
        ]),
      ) + '\n',
    );
    return 0;
  },
};
