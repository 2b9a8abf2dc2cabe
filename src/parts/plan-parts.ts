import type { TableDetails } from '../postgres/snapshot';
import type { BlockRange } from './copy-sql';
import { tablePartName } from './part-names';

/** One table-data part to dump: which table, which of its block ranges, and how big it should be. */
export interface PlannedPart {
  name: string;
  table: TableDetails;
  index: number;
  /** Absent: the whole table. */
  range?: BlockRange;
  /** Estimated bytes of table it reads: the largest parts go first. */
  estimatedBytes: number;
}

export interface PartPlanOptions {
  /** BACKUP_PART_SIZE: a table larger than this is split. */
  partBytes: number;
  /** The server's block size (current_setting('block_size')). */
  blockBytes: number;
  /** PostgreSQL 14+: a ctid range is read by a TID range scan, not by a scan of the whole table. */
  tidRangeScans: boolean;
}

/** Part numbers are four digits (t<oid>-0000 … t<oid>-9998). */
export const MAX_PARTS_PER_TABLE = 9999;

/**
 * Block ranges of about `partBytes` of table each, covering the whole table: the first starts at
 * block 0 and the last has no end, so every row is in exactly one part whatever the table's size
 * now (it was measured outside the snapshot).
 */
export function blockRanges(table: Pick<TableDetails, 'mainBytes' | 'tableBytes'>, options: PartPlanOptions): BlockRange[] {
  const blocks = Math.ceil(table.mainBytes / options.blockBytes);
  if (!options.tidRangeScans || table.tableBytes <= options.partBytes || blocks < 2) return [{ fromBlock: 0 }];
  const count = Math.min(MAX_PARTS_PER_TABLE, blocks, Math.ceil(table.tableBytes / options.partBytes));
  const step = Math.ceil(blocks / count);
  const ranges: BlockRange[] = [];
  for (let from = 0; from < blocks; from += step) ranges.push({ fromBlock: from, toBlock: from + step });
  delete ranges[ranges.length - 1]!.toBlock;
  return ranges;
}

/**
 * The table-data parts of a backup: at least one per table (an empty table too, so that its
 * restore knows it is empty), several for a table larger than BACKUP_PART_SIZE. Largest first,
 * so that the long ones start early and the short ones fill the gaps at the end.
 */
export function planParts(tables: TableDetails[], options: PartPlanOptions): PlannedPart[] {
  const parts: PlannedPart[] = [];
  for (const table of tables) {
    if (table.kind !== 'table') continue;
    const ranges = blockRanges(table, options);
    ranges.forEach((range, index) => {
      parts.push({
        name: tablePartName(table.oid, index),
        table,
        index,
        ...(ranges.length > 1 && { range }),
        estimatedBytes: table.tableBytes / ranges.length,
      });
    });
  }
  return parts.sort((a, b) => b.estimatedBytes - a.estimatedBytes || a.table.oid - b.table.oid || a.index - b.index);
}
