import { catalogFor, destinationStorage, LOCAL } from '../../backup/repository';
import { Catalog } from '../../catalog/catalog';
import { manifestTrust, type ManifestTrust } from '../../catalog/authenticate';
import type { Manifest } from '../../catalog/manifest';
import { findDestination } from '../../config/config';
import { loadConfig } from '../../config/load';
import { keyringFor } from '../../crypto/keys';
import { isParts } from '../../parts/parts-of';
import type { Command } from '../command';
import { dbOption, jsonOption, selectDatabases, storageOption } from '../common';
import { formatBytes, printJson, table } from '../output';

export const listCommand: Command = {
  name: 'list',
  summary: 'list verified backups, locally or in a destination (reads the storage itself; no Temporal needed)',
  usage: 'lifeline list [--db NAME] [--storage local|DESTINATION] [--json]',
  details: `  --db NAME          one database (default: all; in a destination, every database it holds)
  --storage NAME     local (default) or a configured destination such as offsite or archive
  DUMP and STORED are totals over all of a backup's objects; PARTS is how many objects a backup in the
  parts format is stored as (its archive, its globals and its table parts), or "stream" for one object`,
  options: { ...dbOption, ...jsonOption, ...storageOption },
  async run({ values }) {
    const where = (values.storage as string | undefined) ?? LOCAL;
    // A destination can be listed from an empty machine: it needs the destination, not a database.
    const cfg = loadConfig({ requireDatabases: where === LOCAL });
    const catalogs = where === LOCAL ? selectDatabases(cfg, values.db as string | undefined).map((db) => ({ catalog: catalogFor(db), database: db.name })) : [{ catalog: new Catalog(destinationStorage(findDestination(cfg, where))), database: values.db as string | undefined }];
    // Every backup is listed, each with whether its manifest is authentic: restores, drills and retention use only those that are.
    const keys = keyringFor(cfg);
    const manifests: Array<Manifest & { trust: ManifestTrust }> = [];
    for (const { catalog, database } of catalogs) {
      for (const m of await catalog.list(database)) manifests.push({ ...m, trust: await manifestTrust(catalog.storage, m, keys) });
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
        ['ID', 'TYPE', 'TAKEN (UTC)', 'DUMP', 'STORED', 'TABLES', 'PARTS', 'KEY', 'MANIFEST'],
        manifests.map((m) => [
          m.id,
          m.type,
          m.startedAt.replace('T', ' ').slice(0, 19),
          formatBytes(m.sizes.rawBytes),
          formatBytes(m.sizes.storedBytes),
          String(m.tables.length),
          // Parts format: how many objects it is stored as (archive, globals, table parts); one stream otherwise.
          isParts(m) ? String(m.parts?.length ?? 0) : 'stream',
          m.encryption.keyId,
          m.trust.status,
        ]),
      ) + '\n',
    );
    const untrusted = manifests.filter((m) => m.trust.status !== 'authentic');
    if (untrusted.length) {
      process.stdout.write(`\n${untrusted.length} manifest(s) not proven authentic; restores, drills and retention do not use them:\n`);
      for (const m of untrusted) process.stdout.write(`  ${m.id}: ${m.trust.problem}\n`);
    }
    return 0;
  },
};
