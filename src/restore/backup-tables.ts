import { qualifiedName, type Manifest, type TableCount } from '../catalog/manifest';
import { LifelineError } from '../errors';

/**
 * The backup's own entries for the "schema.table" names a plan carries. A name is matched whole,
 * never split at a dot (schemas and tables may hold dots), and the entry gives the exact schema,
 * name and OID that SQL and the archive are then addressed with. Two tables can print alike
 * (public."x.y" and "public.x".y): a name then stands for both, so a full or data-only restore
 * still covers every table (a `--tables` request naming such a pair is refused as ambiguous).
 */
export function backupTables(manifest: Manifest, names: string[]): TableCount[] {
  const found = new Set<TableCount>();
  for (const name of names) {
    const matches = manifest.tables.filter((t) => t.kind === 'table' && qualifiedName(t) === name);
    if (!matches.length) {
      throw new LifelineError('UnknownTable', `${JSON.stringify(name)} is not a table of backup ${manifest.id}`, {
        hint: 'name tables as schema.table, as the restore plan lists them',
      });
    }
    for (const t of matches) found.add(t);
  }
  return [...found];
}
