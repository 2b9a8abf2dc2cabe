import { LOCAL, storageNamed } from '../../backup/repository';
import { Catalog } from '../../catalog/catalog';
import { verifyBackup } from '../../backup/verify';
import type { Manifest } from '../../catalog/manifest';
import { parseBackupId } from '../../catalog/naming';
import { keyringFor } from '../../crypto/keys';
import { isParts } from '../../parts/parts-of';
import { errorMessage, UsageError } from '../../errors';
import type { Command } from '../command';
import { config, dbOption, jsonOption, pickDatabase, selectDatabases, storageOption } from '../common';
import { formatDuration, printJson } from '../output';

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'read backups back: checksum, decryption, decompression and pg_restore --list',
  usage: 'lifeline verify ID | --all [--db NAME] [--storage local|DESTINATION] [--json]',
  options: { ...dbOption, ...jsonOption, ...storageOption, all: { type: 'boolean' } },
  allowPositionals: true,
  async run({ values, positionals }) {
    const cfg = config();
    if (Boolean(values.all) === (positionals.length > 0)) throw new UsageError('give one backup ID, or --all');
    const storageFor = (database: string) => storageNamed(cfg, pickDatabase(cfg, database), (values.storage as string | undefined) ?? LOCAL);
    const targets: Manifest[] = [];
    if (values.all) {
      for (const db of selectDatabases(cfg, values.db as string | undefined)) targets.push(...(await new Catalog(storageFor(db.name)).list(db.name)));
    } else {
      for (const id of positionals) {
        const database = parseBackupId(id)?.database;
        if (!database) throw new UsageError(`${id} is not a backup id (like moneyflow_backup_20261126_030000)`);
        targets.push(await new Catalog(storageFor(database)).get(id));
      }
    }
    const keys = keyringFor(cfg);
    const results = [];
    for (const manifest of targets) {
      const storage = storageFor(manifest.database);
      try {
        const { verification: v } = await verifyBackup(storage, manifest, keys, { jobs: cfg.parallelJobs });
        // A parts backup: every part was read and checked; say how many, and the rows' parts among them.
        const parts = isParts(manifest) ? (manifest.parts ?? []) : undefined;
        const tableParts = parts?.filter((p) => p.kind === 'table-data').length;
        results.push({ id: manifest.id, ok: true, tocEntries: v.tocEntries, ...(parts && { parts: parts.length, tableParts }), durationMs: v.durationMs });
        const what = parts ? `${parts.length} parts (${tableParts} of table rows), ${v.tocEntries} archive entries` : `${v.tocEntries} archive entries`;
        if (!values.json) process.stdout.write(`OK    ${manifest.id}  (${what}, ${formatDuration(v.durationMs)})\n`);
      } catch (err) {
        results.push({ id: manifest.id, ok: false, error: errorMessage(err) });
        if (!values.json) process.stdout.write(`FAIL  ${manifest.id}  ${errorMessage(err)}\n`);
      }
    }
    if (values.json) printJson(results);
    else if (targets.length === 0) process.stdout.write('No backups to verify.\n');
    return results.every((r) => r.ok) ? 0 : 1;
  },
};
