import type { Writable } from 'node:stream';
import { IntegrityError } from '../errors';
import { processInput, spawnChild } from '../pipeline/child-process';
import { pgTool } from './binaries';

/** One TABLE DATA entry of an archive: what selects it (`pg_restore -L`) and what it belongs to. */
export interface TableDataEntry {
  dumpId: number;
  /** The table's OID in the source database when it was dumped (the manifest records the same). */
  oid: number;
  /** The rest of the listing line ("schema name owner", newlines made spaces): only for manifests that predate OIDs. */
  described: string;
}

export interface TocSummary {
  entries: number;
  tableDataEntries: number;
  tableData: TableDataEntry[];
}

/**
 * Reads the numbers at the start of each `pg_restore --list` line ("3351; 0 16390 TABLE DATA public
 * accounts owner"), never the names after them: a name may hold spaces, and pg_restore prints its
 * newlines as spaces, so a line cannot be forged by a name. Catalog id 0 marks a TABLE DATA entry
 * (a TABLE entry in a schema named DATA has pg_class's OID there).
 */
export function parseToc(listing: string): TocSummary {
  const lines = listing.split('\n').filter((l) => l.trim() && !l.startsWith(';'));
  const tableData: TableDataEntry[] = [];
  for (const line of lines) {
    const m = /^(\d+); 0 (\d+) TABLE DATA (.*)$/.exec(line);
    if (m) tableData.push({ dumpId: Number(m[1]), oid: Number(m[2]), described: m[3]! });
  }
  return { entries: lines.length, tableDataEntries: tableData.length, tableData };
}

type NamedTable = { schema: string; name: string; oid?: number };

/** How pg_restore --list prints a table's schema and name (newlines as spaces), then a space. */
function printed(t: NamedTable): string {
  return `${t.schema} ${t.name} `.replace(/[\r\n]/g, ' ');
}

/**
 * The archive's TABLE DATA entry of a table the manifest lists: by its OID at dump time, or, for a
 * manifest written before OIDs were recorded, by its name as pg_restore prints it. A printed name
 * may be the start of another's ("public order " of "public order items "), so an entry belongs to
 * the longest name of `all` (the manifest's tables) it starts with, and only one entry may match.
 */
export function tableDataOf(toc: TocSummary, table: NamedTable, all: readonly NamedTable[] = [table]): TableDataEntry | undefined {
  if (table.oid !== undefined) return toc.tableData.find((e) => e.oid === table.oid);
  const prefix = printed(table);
  const longer = all.map(printed).filter((p) => p.length > prefix.length && p.startsWith(prefix));
  const matches = toc.tableData.filter((e) => e.described.startsWith(prefix) && !longer.some((p) => e.described.startsWith(p)));
  return matches.length === 1 ? matches[0] : undefined;
}

/**
 * A sink that feeds a stream to `pg_restore --list` (with `args`: `--verbose` for dependencies,
 * `--section=post-data`, …) and keeps accepting (and discarding) bytes after pg_restore has read the
 * table of contents and exited, so the rest can still be hashed.
 */
export function pgRestoreListSink(args: string[] = []): { sink: Writable; toc: Promise<TocSummary>; listing: Promise<string> } {
  const proc = spawnChild(pgTool('pg_restore'), ['--list', ...args], {
    classify: (code, _signal, stderr) =>
      new IntegrityError(`pg_restore --list rejects the archive (status ${code}): ${stderr}`),
  });
  let stdout = '';
  proc.child.stdout.setEncoding('utf8');
  proc.child.stdout.on('data', (d: string) => (stdout += d));
  const sink = processInput(proc);
  const listing = proc.exited.then(() => stdout);
  const toc = listing.then(parseToc);
  // awaited only when the pipeline succeeds
  listing.catch(() => undefined);
  toc.catch(() => undefined);
  return { sink, toc, listing };
}

/** What a post-data entry is, as far as restoring it in parallel goes. */
export type TocEntryKind = 'table' | 'index' | 'constraint' | 'other';

/** One entry of a `pg_restore --list` listing: numbers and the entry's type, never its names. */
export interface TocEntry {
  dumpId: number;
  /** OID of the system catalog that holds the object (pg_class 1259, pg_constraint 2606; 0 for made-up entries). */
  catalogId: number;
  /** The object's OID at dump time (a TABLE's is the manifest's tables[].oid). */
  oid: number;
  kind: TocEntryKind;
  /** Dump ids it depends on (`--verbose` listings only). */
  dependsOn: number[];
}

const PG_CLASS = 1259;
const PG_CONSTRAINT = 2606;

/**
 * Entries of a listing. The type is read right after the numbers and only where the catalog id
 * pins it down: a pg_class entry printed "INDEX …" is an index, a pg_constraint one printed
 * "CONSTRAINT …" a primary key, unique or exclusion constraint ("FK CONSTRAINT" and "CHECK
 * CONSTRAINT" start otherwise), a pg_class one printed "TABLE …" a table ("TABLE ATTACH" and
 * "TABLE DATA" have catalog id 0). Names after the type are never read; a name's newlines are
 * printed as spaces, so no name can start a line of its own.
 */
export function parseTocEntries(listing: string): TocEntry[] {
  const entries: TocEntry[] = [];
  for (const line of listing.split('\n')) {
    const deps = /^;\s+depends on:((?: \d+)+)\s*$/.exec(line);
    if (deps && entries.length) {
      entries[entries.length - 1]!.dependsOn.push(...deps[1]!.trim().split(' ').map(Number));
      continue;
    }
    const m = /^(\d+); (\d+) (\d+) (.*)$/.exec(line);
    if (!m) continue;
    const catalogId = Number(m[2]);
    const rest = m[4]!;
    const kind: TocEntryKind =
      catalogId === PG_CLASS && rest.startsWith('INDEX ') ? 'index'
      : catalogId === PG_CONSTRAINT && rest.startsWith('CONSTRAINT ') ? 'constraint'
      : catalogId === PG_CLASS && rest.startsWith('TABLE ') ? 'table'
      : 'other';
    entries.push({ dumpId: Number(m[1]), catalogId, oid: Number(m[3]), kind, dependsOn: [] });
  }
  return entries;
}
