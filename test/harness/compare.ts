import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pgTool } from '../../src/postgres/binaries';
import { query } from './fixtures';

const run = promisify(execFile);

/** Schema as pg_dump prints it, without owners, grants or the per-run \restrict key. */
export async function schemaOf(url: string): Promise<string> {
  const { stdout } = await run(pgTool('pg_dump'), ['--schema-only', '--no-owner', '--no-privileges', `--dbname=${url}`], { maxBuffer: 64 << 20 });
  return stdout
    .split('\n')
    .filter((l) => !l.startsWith('\\restrict') && !l.startsWith('\\unrestrict'))
    .join('\n');
}

/** Every user table's row count and a digest of all its rows (in a stable order). */
export async function contentOf(url: string): Promise<Record<string, { rows: number; md5: string }>> {
  const tables = await query<{ t: string }>(
    url,
    `SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1`,
  );
  const out: Record<string, { rows: number; md5: string }> = {};
  for (const { t } of tables) {
    const [r] = await query<{ n: string; h: string }>(
      url,
      `SELECT count(*) AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS h FROM ONLY ${t} x`,
    );
    out[t] = { rows: Number(r!.n), md5: r!.h };
  }
  const [lo] = await query<{ n: string; h: string }>(
    url,
    `SELECT count(*) AS n, md5(coalesce(string_agg(encode(lo_get(oid), 'hex'), ',' ORDER BY oid), '')) AS h FROM pg_largeobject_metadata`,
  );
  out['(large objects)'] = { rows: Number(lo!.n), md5: lo!.h };
  return out;
}
