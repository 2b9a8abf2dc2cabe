import { userInfo } from 'node:os';
import { parseBackupId } from '../../catalog/naming';
import { UsageError } from '../../errors';
import { setLegalHold } from '../../retention/apply';
import type { Command } from '../command';
import { config, pickDatabase } from '../common';

export const holdCommand: Command = {
  name: 'hold',
  summary: 'put a backup under legal hold (retention never deletes it), or release it',
  usage: 'lifeline hold ID --reason TEXT [--by NAME] | lifeline hold ID --release',
  options: { reason: { type: 'string' }, by: { type: 'string' }, release: { type: 'boolean' } },
  allowPositionals: true,
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('give one backup id');
    const id = positionals[0]!;
    const database = parseBackupId(id)?.database;
    if (!database) throw new UsageError(`${id} is not a backup id (like moneyflow_backup_20261126_030000)`);
    const cfg = config();
    const db = pickDatabase(cfg, database);
    const reason = (values.reason as string | undefined)?.trim();
    if (!values.release && !reason) throw new UsageError('--reason TEXT is required for a legal hold');
    const places = await setLegalHold(cfg, db.name, id, values.release ? undefined : { by: (values.by as string | undefined) ?? userInfo().username, reason: reason! });
    if (places.length === 0) throw new UsageError(`no verified backup ${id} in any storage`);
    process.stdout.write(`${values.release ? 'Released' : 'Held'} ${id} in:\n${places.map((p) => `  ${p}\n`).join('')}`);
    return 0;
  },
};
