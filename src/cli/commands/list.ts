import { catalogFor, destinationStorage, LOCAL } from '../../backup/repository';
import { Catalog } from '../../catalog/catalog';
import type { Manifest } from '../../catalog/manifest';
import { findDestination } from '../../config/config';
import { loadConfig } from '../../config/load';
import type { Command } from '../command';
import { dbOption, jsonOption, selectDatabases, storageOption } from '../common';
import { formatBytes, printJson, table } from '../output';

export const listCommand: Command = {
  name: 'list',
  summary: 'list verified backups, locally or in a destination (reads the storage itself; no Temporal needed)',
  usage: 'lifeline list [--db NAME] [--storage local|DESTINATION] [--json]',
  details: `  --db NAME          one database (default: all; in a destination, every database it holds)
  --storage NAME     local (default) or a configured destination such as offsite or archive`,
  options: { ...dbOption, ...jsonOption, ...storageOption },
  async run({ values }) {
    const where = (values.storage as string | undefined) ?? LOCAL;
    // A destination can be listed from an empty machine: it needs the destination, not a database.
    const cfg = loadConfig({ requireDatabases: where === LOCAL });
    const manifests: Manifest[] = [];
    if (where === LOCAL) {
      for (const db of selectDatabases(cfg, values.db as string | undefined)) manifests.push(...(await catalogFor(db).list(db.name)));
    } else {
      manifests.push(...(await new Catalog(destinationStorage(findDestination(cfg, where))).list(values.db as string | undefined)));
    }
    if (values.json) {
      printJson(manifests.map(({ encryption: { wrappedKey: _omit, ...encryption }, ...m }) => ({ ...m, encryption })));
      return 0;
    }
    if (manifests.length === 0) {
      process.stdout.write(where === LOCAL ? 'No backups yet. Take one with `lifeline backup --wait`.\n' : `No backups in ${where}.\n`);
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
