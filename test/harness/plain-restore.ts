/**
 * Restores a parts-format backup with nothing but PostgreSQL's own tools, the way an operator
 * could by hand: the archive part's pre-data into pg_restore, each table part's COPY text into
 * `COPY … FROM STDIN` (the columns the manifest records), then the archive's data section
 * (sequences, large objects) and post-data (indexes, constraints, triggers). Every part is checked
 * against the manifest (checkPart). Independent of Lifeline's own restore code, so a test that
 * uses it proves the stored format, not one reader of it.
 */
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { DumpRecord } from '../../src/catalog/manifest';
import { feedAndWait, processInput, spawnChild } from '../../src/pipeline/child-process';
import { copyFromSql } from '../../src/parts/copy-sql';
import { partsOfTable } from '../../src/parts/parts-of';
import { checkPart, openPart } from '../../src/parts/read-part';
import { pgTool } from '../../src/postgres/binaries';
import { pgClientConfig } from '../../src/postgres/connection';
import type { BackupStorage } from '../../src/storage/storage';

export async function restorePartsWithPlainTools(storage: BackupStorage, record: DumpRecord, dataKey: Buffer, targetUrl: string): Promise<void> {
  const archive = record.parts!.find((p) => p.kind === 'archive')!;
  const pgRestore = async (section: 'pre-data' | 'data' | 'post-data') => {
    const chain = await openPart(storage, record, archive, dataKey);
    const proc = spawnChild(pgTool('pg_restore'), ['--no-owner', '--exit-on-error', `--section=${section}`, `--dbname=${targetUrl}`]);
    await feedAndWait(pipeline(...chain.stages, processInput(proc)), proc);
    checkPart(chain, archive);
  };
  await pgRestore('pre-data');
  const client = new pg.Client(pgClientConfig(targetUrl));
  await client.connect();
  try {
    await client.query("SET client_encoding = 'UTF8'; SET DateStyle = ISO");
    for (const table of record.tables.filter((t) => t.kind === 'table')) {
      for (const part of partsOfTable(record, table.oid!)) {
        const chain = await openPart(storage, record, part, dataKey);
        await pipeline(...chain.stages, client.query(copyFrom(copyFromSql(table))));
        checkPart(chain, part);
      }
    }
  } finally {
    await client.end();
  }
  await pgRestore('data');
  await pgRestore('post-data');
}
