import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DumpRecord } from '../../src/catalog/manifest';
import { parseTocEntries } from '../../src/postgres/pg-restore-list';
import { planPostData } from '../../src/restore/post-data';

/**
 * `pg_restore --list --verbose` of a PostgreSQL 15 archive (a partitioned table, a table in a schema
 * named ATTACH whose names hold spaces, a foreign key, a trigger, a materialized view with an index),
 * plus a table whose name tries to look like an index entry.
 */
const VERBOSE = `;
; Selected TOC Entries:
;
6; 2615 16385 SCHEMA - ATTACH postgres
221; 1255 16424 FUNCTION public trg() postgres
217; 1259 16398 TABLE ATTACH x y postgres
;\tdepends on: 6
218; 1259 16407 TABLE public r postgres
219; 1259 16417 MATERIALIZED VIEW public mv postgres
;\tdepends on: 218
215; 1259 16386 TABLE public p postgres
216; 1259 16391 TABLE public p1 postgres
;\tdepends on: 215
222; 1259 16430 TABLE public INDEX x 3300; 1259 1 INDEX public y postgres
3215; 0 0 TABLE ATTACH public p1 postgres
;\tdepends on: 216 215
3379; 0 16398 TABLE DATA ATTACH x y postgres
;\tdepends on: 217
3223; 2606 16404 CONSTRAINT ATTACH x y x y_pkey postgres
;\tdepends on: 217
3218; 2606 16390 CONSTRAINT public p p_pkey postgres
;\tdepends on: 215 215
3221; 2606 16395 CONSTRAINT public p1 p1_pkey postgres
;\tdepends on: 216 216 3218 216
3227; 2606 16411 CONSTRAINT public r r_pkey postgres
;\tdepends on: 218
3228; 1259 16421 INDEX public mv_count_idx postgres
;\tdepends on: 219
3216; 1259 16396 INDEX public p_at_idx postgres
;\tdepends on: 215
3393; 0 0 COMMENT public INDEX p_at_idx postgres
;\tdepends on: 3216
3219; 1259 16397 INDEX public p1_at_idx postgres
;\tdepends on: 216 3216 216
3229; 0 0 INDEX ATTACH public p1_at_idx postgres
;\tdepends on: 3219 3216 216 215
3232; 2620 16425 TRIGGER public r t postgres
;\tdepends on: 221 218
3231; 2606 16412 FK CONSTRAINT public r r_id_fkey postgres
;\tdepends on: 218 3223 217
3381; 0 16417 MATERIALIZED VIEW DATA public mv postgres
;\tdepends on: 219 3386
`;

const POST_DATA = [3223, 3218, 3221, 3227, 3228, 3216, 3393, 3219, 3229, 3232, 3231, 3381];

const MB = 1 << 20;
const part = (tableOid: number, index: number, rawBytes: number) => ({
  name: `t${tableOid}-${String(index).padStart(4, '0')}`,
  kind: 'table-data' as const,
  tableOid,
  rows: 1,
  rawBytes,
  storedBytes: rawBytes,
  sha256: '0'.repeat(64),
  rawSha256: '0'.repeat(64),
});
const record: Pick<DumpRecord, 'parts' | 'tables'> = {
  tables: [
    { schema: 'ATTACH', name: 'x y', kind: 'table', rows: 10, oid: 16398 },
    { schema: 'public', name: 'r', kind: 'table', rows: 0, oid: 16407 },
    { schema: 'public', name: 'p', kind: 'partitioned', rows: 1, oid: 16386 },
    { schema: 'public', name: 'p1', kind: 'table', rows: 1, oid: 16391, parentOid: 16386 },
  ],
  parts: [part(16398, 0, 1 * MB), part(16407, 0, 0), part(16391, 0, 300 * MB), part(16391, 1, 300 * MB)],
};

describe('post-data entries of a parallel restore', () => {
  it('reads dump ids, catalog ids, OIDs, dependencies and the entry type, never a name', () => {
    const entries = parseTocEntries(VERBOSE);
    const of = (id: number) => entries.find((e) => e.dumpId === id)!;
    assert.deepEqual(entries.filter((e) => e.kind === 'index').map((e) => e.dumpId), [3228, 3216, 3219]);
    assert.deepEqual(entries.filter((e) => e.kind === 'constraint').map((e) => e.dumpId), [3223, 3218, 3221, 3227]);
    assert.deepEqual(entries.filter((e) => e.kind === 'table').map((e) => [e.dumpId, e.oid]), [[217, 16398], [218, 16407], [215, 16386], [216, 16391], [222, 16430]]);
    // FK CONSTRAINT, INDEX ATTACH, COMMENT on an index, TABLE ATTACH, TABLE DATA, MATERIALIZED VIEW: none of the two kinds run in parallel.
    for (const id of [3231, 3229, 3393, 3215, 3379, 219, 3381]) assert.equal(of(id).kind, 'other', String(id));
    assert.deepEqual(of(3221).dependsOn, [216, 216, 3218, 216]);
    assert.deepEqual(of(3393).dependsOn, [3216]);
    assert.equal(entries.length, 22);
  });

  it('keeps every entry of one table in one batch, the largest tables first, everything else for last in archive order', () => {
    const plan = planPostData(parseTocEntries(VERBOSE), POST_DATA, record, 2);
    assert.deepEqual(plan.batches[0], [3221, 3219], 'p1 (600 MiB of parts): its key and index together, first');
    assert.deepEqual(plan.batches.flat().sort(), [3216, 3218, 3219, 3221, 3223, 3227, 3228].sort());
    assert.deepEqual(plan.rest, [3393, 3229, 3232, 3231, 3381]);
    for (const batch of plan.batches) {
      // x y's two constraints (or p's, or r's) never split over two lanes.
      for (const pair of [[3223], [3218, 3216], [3227], [3221, 3219]]) {
        assert.ok(pair.every((id) => batch.includes(id)) || pair.every((id) => !batch.includes(id)), `${pair} in one batch`);
      }
    }
  });

  it('keeps the number of pg_restore runs bounded by the jobs, not by the number of tables', () => {
    const tables = Array.from({ length: 500 }, (_, i) => i + 1000);
    const listing = tables.map((t, i) => `${t}; 1259 ${20000 + i} TABLE public t${i} postgres\n${5000 + i}; 1259 ${40000 + i} INDEX public i${i} postgres\n;\tdepends on: ${t}\n`).join('');
    const postData = tables.map((_, i) => 5000 + i);
    const plan = planPostData(parseTocEntries(listing), postData, { tables: [], parts: [] }, 2);
    assert.ok(plan.batches.length <= 2 * 4 + 1, `${plan.batches.length} batches`);
    assert.equal(plan.batches.flat().length, 500);
    assert.deepEqual(planPostData(parseTocEntries(listing), [], { tables: [], parts: [] }, 2), { batches: [], rest: [] });
  });
});
