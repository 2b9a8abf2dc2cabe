/**
 * Names of the objects of a parts-format backup (format `parts-v1`). A backup is:
 *   <db>/<id>.dump.<ext>.enc                the pg_dump custom archive: schema, sequences, large
 *                                           objects, and the data of every table not stored as parts
 *   <db>/<id>.part.globals.<ext>.enc        the roles and tablespaces the database uses (JSON)
 *   <db>/<id>.part.t<oid>-<nnnn>.<ext>.enc  rows of table <oid> (COPY text), part nnnn of that table
 * Part names come from numbers only, never from a table's name: hostile names never reach a path.
 * Every name starts with `<id>.`, so listing, replication, retention and removal by id see them all.
 */
export const ARCHIVE_PART = 'archive';
export const GLOBALS_PART = 'globals';

const TABLE_PART = /^t([1-9][0-9]{0,9})-([0-9]{4})$/;
export const PART_NAME_PATTERN = /^(archive|globals|t[1-9][0-9]{0,9}-[0-9]{4})$/;

export function tablePartName(oid: number, index: number): string {
  if (!Number.isInteger(oid) || oid <= 0 || oid > 0xffffffff) throw new RangeError(`table OID ${oid} is not a valid OID`);
  if (!Number.isInteger(index) || index < 0 || index > 9999) throw new RangeError(`part index ${index} is outside 0..9999`);
  return `t${oid}-${String(index).padStart(4, '0')}`;
}

export function parseTablePartName(name: string): { oid: number; index: number } | undefined {
  const m = TABLE_PART.exec(name);
  return m ? { oid: Number(m[1]), index: Number(m[2]) } : undefined;
}

/** The object key of a part other than the archive (which keeps the single-stream name, dataKey()). */
export function partObjectKey(database: string, backupId: string, partName: string, compressionExt: string): string {
  if (!PART_NAME_PATTERN.test(partName) || partName === ARCHIVE_PART) throw new RangeError(`${JSON.stringify(partName)} is not the name of a stored part`);
  return `${database}/${backupId}.part.${partName}.${compressionExt}.enc`;
}
