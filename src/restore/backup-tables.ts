import { qualifiedName, type Manifest, type TableCount } from '../catalog/manifest';
import { LifelineError } from '../errors';

/**
 * The backup's own entries for the "schema.table" names a plan carries. A name is matched whole,
 * never split at a dot (schemas and tables may hold dots), and the entry gives the exact schema,
 * name and OID that SQL and the archive are then addressed with.
 */
export function backupTables(manifest: Manifest, names: string[]): TableCount[] {
  return names.map((name) => {
    const matches = manifest.tables.filter((t) => t.kind === 'table' && qualifiedName(t) === name);
    if (matches.length !== 1) {
      throw new LifelineError('UnknownTable', `${JSON.stringify(name)} ${matches.length ? 'names more than one table' : 'is not a table'} of backup ${manifest.id}`, {
        hint: 'name tables as schema.table, as `lifeline restore --plan` lists them',
      });
    }
    return matches[0]!;
  });
}
