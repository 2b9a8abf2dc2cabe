import type { DumpRecord } from '../catalog/manifest';
import { siblingKey } from '../catalog/naming';
import { FILE_EXTENSION } from '../pipeline/compression';
import { ARCHIVE_PART, parseTablePartName } from './part-names';
import { PARTS_FORMAT, type PartRecord } from './part-record';

type Record_ = Pick<DumpRecord, 'id' | 'object' | 'compression' | 'format' | 'parts' | 'sha256' | 'tables'>;

export function isParts(record: Pick<DumpRecord, 'format'>): boolean {
  return record.format === PARTS_FORMAT;
}

/**
 * Where a part is in the storage that holds this copy of the manifest: the archive is `object.key`,
 * every other part sits beside it (`<id>.part.<name>.<ext>.enc`), in a repository, a destination or
 * a drill's work folder alike.
 */
export function partObjectKeyOf(record: Pick<DumpRecord, 'object' | 'compression'>, part: Pick<PartRecord, 'name'>): string {
  if (part.name === ARCHIVE_PART) return record.object.key;
  return siblingKey(record.object.key, `.part.${part.name}.${FILE_EXTENSION[record.compression.algorithm]}.enc`);
}

/** What is wrong with a parts list (or undefined): the manifest's own promises about its parts. */
export function partsProblem(record: Record_): string | undefined {
  if (!isParts(record)) return record.parts ? `it lists parts but its format is not ${PARTS_FORMAT}` : undefined;
  const parts = record.parts ?? [];
  const names = new Set<string>();
  for (const p of parts) {
    if (names.has(p.name)) return `it lists part ${p.name} twice`;
    names.add(p.name);
  }
  const archive = parts.filter((p) => p.kind === 'archive');
  if (archive.length !== 1 || archive[0]!.name !== ARCHIVE_PART) return 'it does not list exactly one archive part';
  if (archive[0]!.sha256 !== record.sha256) return 'its archive part is not the object its sha256 names';
  const next = new Map<number, number>();
  for (const p of parts) {
    if (p.kind !== 'table-data') continue;
    const parsed = parseTablePartName(p.name);
    if (!parsed || parsed.oid !== p.tableOid || p.rows === undefined) return `its part ${p.name} does not name its table and rows`;
    if (!record.tables.some((t) => t.kind === 'table' && t.oid === p.tableOid)) return `its part ${p.name} belongs to no table of the backup`;
    if (parsed.index !== (next.get(parsed.oid) ?? 0)) return `the parts of table ${parsed.oid} are not numbered 0, 1, 2, … in order`;
    next.set(parsed.oid, parsed.index + 1);
  }
  return undefined;
}

/** Every stored object of a backup with its size and SHA-256: the parts, or the one stream. */
export function storedObjects(record: DumpRecord): Array<{ name: string; key: string; storedBytes: number; sha256: string }> {
  if (!isParts(record)) return [{ name: ARCHIVE_PART, key: record.object.key, storedBytes: record.sizes.storedBytes, sha256: record.sha256 }];
  return (record.parts ?? []).map((p) => ({ name: p.name, key: partObjectKeyOf(record, p), storedBytes: p.storedBytes, sha256: p.sha256 }));
}

/** The table-data parts of one table, in order. */
export function partsOfTable(record: Pick<DumpRecord, 'parts'>, oid: number): PartRecord[] {
  return (record.parts ?? []).filter((p) => p.kind === 'table-data' && p.tableOid === oid);
}
