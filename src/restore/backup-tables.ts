import { qualifiedName, type Manifest, type TableCount } from '../catalog/manifest';
import { LifelineError } from '../errors';
import { parsePgSpelling } from './table-names';

/**
 * The backup's own entries for the names a plan carries (planName): `schema.table` as printed, or
 * pg_dump's quoted spelling for a table another one prints alike. A printed name is matched whole,
 * never split at a dot (schemas and tables may hold dots), and the entry gives the exact schema,
 * name and OID that SQL and the archive are then addressed with. A printed name two tables share
 * (public."x.y" and "public.x".y, in plans from before planName) stands for both, so a full or
 * data-only restore still covers every table (a `--tables` request naming such a pair is refused
 * as ambiguous while planning). Partitioned parents are returned as such: see leafTables.
 */
export function backupTables(manifest: Pick<Manifest, 'id' | 'tables'>, names: string[]): TableCount[] {
  const found = new Set<TableCount>();
  for (const name of names) {
    let matches = manifest.tables.filter((t) => qualifiedName(t) === name);
    if (!matches.length) {
      const spelled = parsePgSpelling(name);
      if ('parts' in spelled && spelled.parts.length === 2) {
        const [schema, table] = spelled.parts as [string, string];
        matches = manifest.tables.filter((t) => t.schema === schema && t.name === table);
      }
    }
    if (!matches.length) {
      throw new LifelineError('UnknownTable', `${JSON.stringify(name)} is not a table of backup ${manifest.id}`, {
        hint: 'name tables as schema.table, as the restore plan lists them',
      });
    }
    for (const t of matches) found.add(t);
  }
  return [...found];
}

/** Whether the backup says which partitions belong to which parent (parentOid): backups since the parts format do. */
export function recordsPartitions(manifest: Pick<Manifest, 'tables' | 'format'>): boolean {
  return manifest.format !== undefined || manifest.tables.some((t) => t.parentOid !== undefined);
}

/**
 * The tables that hold the rows of the given ones: a table itself, a partitioned parent all its
 * partitions, recursively (sub-partitioned ones too), each once, in the backup's order.
 */
export function leafTables(manifest: Pick<Manifest, 'id' | 'tables' | 'format'>, tables: readonly TableCount[]): TableCount[] {
  const wanted = new Set<TableCount>();
  const children = (parent: TableCount) => manifest.tables.filter((t) => parent.oid !== undefined && t.parentOid === parent.oid);
  const add = (t: TableCount, depth: number) => {
    if (depth > 64) throw new LifelineError('IntegrityError', `backup ${manifest.id} records partitions nested more than 64 deep under ${qualifiedName(t)}`);
    if (t.kind === 'table') return void wanted.add(t);
    if (!recordsPartitions(manifest) || t.oid === undefined) {
      throw new LifelineError('UnknownTable', `${qualifiedName(t)} is a partitioned table, and backup ${manifest.id} does not record which partitions are its own`, {
        hint: 'name its partitions (the plan of a backup taken before partitions were recorded lists them), or use a newer backup',
      });
    }
    for (const c of children(t)) add(c, depth + 1);
  };
  for (const t of tables) add(t, 0);
  return manifest.tables.filter((t) => wanted.has(t));
}
