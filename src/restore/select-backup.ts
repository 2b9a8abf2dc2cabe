import type { Catalog } from '../catalog/catalog';
import type { Manifest } from '../catalog/manifest';
import { LifelineError } from '../errors';

export interface BackupChoice {
  /** 'latest' or a backup id. */
  backup?: string;
  /** ISO time: the newest backup taken at or before it. */
  at?: string;
}

/**
 * Picks the backup to restore. 'latest' and 'at' consider full backups only (never a pre-restore
 * snapshot or a partial type); an explicit id can name any backup. Times come from manifests.
 */
export async function selectBackup(catalog: Catalog, database: string, choice: BackupChoice): Promise<Manifest> {
  if (choice.backup && choice.backup !== 'latest') {
    const manifest = await catalog.get(choice.backup);
    if (manifest.database !== database) {
      throw new LifelineError('InvalidInput', `backup ${choice.backup} belongs to database ${manifest.database}, not ${database}`);
    }
    return manifest;
  }
  const full = (await catalog.list(database)).filter((m) => m.type === 'full');
  if (choice.at) {
    const at = Date.parse(choice.at);
    const chosen = full.filter((m) => Date.parse(m.startedAt) <= at).at(-1);
    if (!chosen) {
      throw new LifelineError(
        'BackupNotFound',
        `no verified full backup of ${database} taken at or before ${choice.at}` + (full[0] ? ` (the oldest is ${full[0].id}, taken ${full[0].startedAt})` : ''),
        { hint: 'run `lifeline list` to see the backups there are' },
      );
    }
    return chosen;
  }
  const latest = full.at(-1);
  if (!latest) {
    throw new LifelineError('BackupNotFound', `no verified full backup of ${database} in ${catalog.storage.location}`, {
      hint: 'take one with `lifeline backup --wait`',
    });
  }
  return latest;
}
