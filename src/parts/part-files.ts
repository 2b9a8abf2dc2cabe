import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { DumpRecord } from '../catalog/manifest';
import { runPipeline } from '../pipeline/run';
import { LocalStorage } from '../storage/local';
import type { BackupStorage } from '../storage/storage';
import { copyFromSql, qualifiedIdent } from './copy-sql';
import type { PartRecord } from './part-record';
import { checkPart, openPart, partFailure } from './read-part';

type PartsRecord = Pick<DumpRecord, 'id' | 'object' | 'compression' | 'parts' | 'tables'>;

/** The file a part becomes: names from part names only (OIDs and numbers), never from a table's name. */
export function partFileName(part: Pick<PartRecord, 'name' | 'kind'>): string {
  return part.kind === 'archive' ? 'archive.dump' : part.kind === 'globals' ? 'globals.json' : `${part.name}.copy`;
}

/**
 * Writes each part of a parts-format backup decrypted as its own file into a new folder `dir`
 * (mode 0700), with index.json saying what each file is (for table parts: the table, its columns
 * and the COPY statement that loads the file). The files are written in a hidden folder beside
 * `dir`, each checked against the manifest, and the folder takes its name only once all are: a
 * failure leaves nothing that looks complete.
 */
export async function writePartFiles(storage: BackupStorage, record: PartsRecord, dataKey: Buffer, dir: string): Promise<string[]> {
  const temp = path.join(path.dirname(dir), `.${path.basename(dir)}.${randomBytes(6).toString('hex')}.partial`);
  await fs.mkdir(temp, { mode: 0o700 });
  try {
    const files = new LocalStorage('parts', temp);
    const index = [];
    for (const part of record.parts ?? []) {
      const file = partFileName(part);
      const chain = await openPart(storage, record, part, dataKey);
      const writer = await files.createWriter(file);
      try {
        await runPipeline([...chain.stages, writer.stream]);
        checkPart(chain, part);
        await writer.publish();
      } catch (err) {
        await writer.abort();
        throw partFailure(err, chain.where);
      }
      const table = part.kind === 'table-data' ? record.tables.find((t) => t.oid === part.tableOid) : undefined;
      index.push({
        file,
        part: part.name,
        kind: part.kind,
        bytes: part.rawBytes,
        sha256: part.rawSha256,
        ...(table && {
          table: { schema: table.schema, name: table.name, oid: table.oid, columns: table.columns },
          rows: part.rows,
          load: table.columns?.length ? `${copyFromSql(table)};` : `COPY ${qualifiedIdent(table)} FROM STDIN;`,
        }),
      });
    }
    await files.putIfAbsent('index.json', Buffer.from(JSON.stringify({ backup: record.id, parts: index }, null, 2) + '\n'));
    // rename() never replaces a folder that has something in it; an empty one made meanwhile is harmless.
    await fs.rename(temp, dir);
    return index.map((i) => i.file);
  } catch (err) {
    await fs.rm(temp, { recursive: true, force: true });
    throw err;
  }
}
