import type { ManifestKeys } from '../catalog/authenticate';
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
 * snapshot or a partial type); an explicit id can name any backup. Times come from manifests, and
 * only from authentic ones (MAC checked): a manifest that fails and claims to be a better choice
 * than the one picked stops the choice, naming it, rather than being skipped in silence.
 */
export async function selectBackup(catalog: Catalog, database: string, choice: BackupChoice, keys: ManifestKeys): Promise<Manifest> {
  if (choice.backup && choice.backup !== 'latest') {
    const manifest = await catalog.getAuthenticated(choice.backup, keys);
    if (manifest.database !== database) {
      throw new LifelineError('InvalidInput', `backup ${choice.backup} belongs to database ${manifest.database}, not ${database}`);
    }
    return manifest;
  }
  const { trusted, untrusted } = await catalog.authenticated(database, keys);
  const at = choice.at ? Date.parse(choice.at) : Infinity;
  const candidate = (m: Manifest) => m.type === 'full' && Date.parse(m.startedAt) <= at;
  const full = trusted.filter((m) => m.type === 'full');
  const chosen = full.filter(candidate).at(-1);
  const claimsBetter = untrusted.find(({ manifest: m }) => candidate(m) && (!chosen || Date.parse(m.startedAt) > Date.parse(chosen.startedAt)));
  if (claimsBetter) throw claimsBetter.error;
  if (chosen) return chosen;
  if (choice.at) {
    throw new LifelineError(
      'BackupNotFound',
      `no verified full backup of ${database} taken at or before ${choice.at}` + (full[0] ? ` (the oldest is ${full[0].id}, taken ${full[0].startedAt})` : ''),
      { hint: 'run `lifeline list` to see the backups there are' },
    );
  }
  throw new LifelineError('BackupNotFound', `no verified full backup of ${database} in ${catalog.storage.location}`, {
    hint: 'take one with `lifeline backup --wait`',
  });
}
