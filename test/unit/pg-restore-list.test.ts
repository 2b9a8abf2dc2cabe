import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseToc, tableDataOf } from '../../src/postgres/pg-restore-list';

/** `pg_restore --list` of an archive with hostile names (PostgreSQL 15 prints a name's newlines as spaces). */
const LISTING = `;
; Archive created at 2026-11-28 01:30:00 UTC
;
6; 2615 16385 SCHEMA - we ird postgres
7; 2615 16399 SCHEMA - DATA postgres
217; 1259 16396 TABLE public $lifeline$\\!\\touch\${IFS}/tmp/x;# postgres
215; 1259 16386 TABLE public order items postgres
216; 1259 16393 TABLE we ird x 123; 0 99999 TABLE DATA public fake postgres
218; 1259 16400 TABLE DATA x postgres
3351; 0 16396 TABLE DATA public $lifeline$\\!\\touch\${IFS}/tmp/x;# postgres
3349; 0 16386 TABLE DATA public order items postgres
3350; 0 16393 TABLE DATA we ird x 123; 0 99999 TABLE DATA public fake postgres
3352; 0 16400 TABLE DATA DATA x postgres
3206; 2606 16392 CONSTRAINT public order items order items_pkey postgres
`;

describe('pg_restore --list', () => {
  it('reads dump ids and OIDs, never names: spaces, forged lines and a schema named DATA are harmless', () => {
    const toc = parseToc(LISTING);
    assert.equal(toc.entries, 11);
    assert.deepEqual(
      toc.tableData.map((e) => [e.dumpId, e.oid]),
      [[3351, 16396], [3349, 16386], [3350, 16393], [3352, 16400]],
    );
    assert.equal(tableDataOf(toc, { schema: 'public', name: 'order items', oid: 16386 })?.dumpId, 3349);
    assert.equal(tableDataOf(toc, { schema: 'public', name: 'fake', oid: 99999 }), undefined);
  });

  it('finds the entries of manifests written before OIDs were recorded by their printed names, one match only', () => {
    const toc = parseToc(LISTING);
    const order = { schema: 'public', name: 'order' };
    const orderItems = { schema: 'public', name: 'order items' };
    assert.equal(tableDataOf(toc, orderItems, [order, orderItems])?.dumpId, 3349);
    assert.equal(tableDataOf(toc, order, [order, orderItems]), undefined, '"public order " is the start of "public order items "');
    assert.equal(tableDataOf(toc, { schema: 'we ird', name: 'x\n123; 0 99999 TABLE DATA public fake' })?.dumpId, 3350);
    assert.equal(tableDataOf(toc, { schema: 'DATA', name: 'x' })?.dumpId, 3352);
    assert.equal(tableDataOf(toc, { schema: 'public', name: 'fake' }), undefined);
  });
});
