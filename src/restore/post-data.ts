import type { DumpRecord } from '../catalog/manifest';
import { partsOfTable } from '../parts/parts-of';
import type { TocEntry } from '../postgres/pg-restore-list';

export interface PostDataPlan {
  /**
   * The index and constraint (primary key, unique, exclusion) entries, in batches: each batch is
   * one `pg_restore -L`, batches run `jobs` at a time, the largest tables first. All entries of one
   * table are in one batch, one after the other: a constraint's ALTER TABLE takes an ACCESS
   * EXCLUSIVE lock, so two lanes working on one table would only wait for each other.
   */
  batches: number[][];
  /** Every other post-data entry (foreign keys, index attachments, triggers, policies, materialized view data, comments, …), in archive order, restored last by one pg_restore. */
  rest: number[];
}

/** What an entry costs beyond its table's rows: creating an empty index is not free either. */
const ENTRY_FLOOR_BYTES = 1 << 20;
/** Batches per lane: enough to balance lanes whose estimates were off, few enough that starting pg_restore (and reading the archive's table of contents) stays cheap. */
const BATCHES_PER_JOB = 4;

/**
 * Splits the post-data section for a parallel restore. `entries` is the whole archive's verbose
 * listing (dependencies), `postData` the dump ids `--section=post-data` lists. An index or
 * constraint belongs to the table entry it depends on; its cost is that table's plain bytes in the
 * backup's parts (what building it reads).
 */
export function planPostData(entries: TocEntry[], postData: readonly number[], record: Pick<DumpRecord, 'parts' | 'tables'>, jobs: number): PostDataPlan {
  const byId = new Map(entries.map((e) => [e.dumpId, e]));
  const inPostData = new Set(postData);
  const tableBytes = new Map<number, number>();
  for (const t of record.tables) {
    if (t.oid !== undefined) tableBytes.set(t.oid, partsOfTable(record, t.oid).reduce((n, p) => n + p.rawBytes, 0));
  }
  const groups = new Map<number, { ids: number[]; cost: number; order: number }>();
  const rest: number[] = [];
  for (const e of entries) {
    if (!inPostData.has(e.dumpId)) continue;
    if (e.kind !== 'index' && e.kind !== 'constraint') {
      rest.push(e.dumpId);
      continue;
    }
    const table = e.dependsOn.map((id) => byId.get(id)).find((d) => d?.kind === 'table');
    const key = table?.dumpId ?? -e.dumpId;
    const group = groups.get(key) ?? { ids: [], cost: 0, order: groups.size };
    group.ids.push(e.dumpId);
    group.cost += (table ? (tableBytes.get(table.oid) ?? 0) : 0) + ENTRY_FLOOR_BYTES;
    groups.set(key, group);
  }
  const sorted = [...groups.values()].sort((a, b) => b.cost - a.cost || a.order - b.order);
  const total = sorted.reduce((n, g) => n + g.cost, 0);
  const target = total / (Math.max(1, jobs) * BATCHES_PER_JOB);
  const batches: number[][] = [];
  let batch: number[] = [];
  let cost = 0;
  for (const g of sorted) {
    batch.push(...g.ids);
    cost += g.cost;
    if (cost >= target) {
      batches.push(batch);
      batch = [];
      cost = 0;
    }
  }
  if (batch.length) batches.push(batch);
  return { batches, rest };
}
