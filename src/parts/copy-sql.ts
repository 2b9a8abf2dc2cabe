import { LifelineError } from '../errors';
import type { TableCount } from '../catalog/manifest';
import { quoteIdent } from '../postgres/connection';

/**
 * The COPY statements of a table's rows. Names come from the database (hostile until checked): they
 * reach SQL only through quoteIdent, never as text of their own.
 */
export function qualifiedIdent(t: Pick<TableCount, 'schema' | 'name'>): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}

export function columnList(t: Pick<TableCount, 'schema' | 'name' | 'columns'>): string {
  if (!t.columns) {
    throw new LifelineError('IntegrityError', `the backup records no columns for ${t.schema}.${t.name}`, { hint: 'this is not a parts-format table entry; restore the whole backup' });
  }
  return t.columns.map(quoteIdent).join(', ');
}

/**
 * ` (a, b)` after a table's name. A table with no columns to copy (`CREATE TABLE t ()`, or only
 * generated ones) has none: COPY takes no empty list, and without one copies exactly those columns
 * (none; each row an empty line).
 */
function columnsClause(t: Pick<TableCount, 'schema' | 'name' | 'columns'>): string {
  const list = columnList(t);
  return list ? ` (${list})` : '';
}

/** COPY … FROM STDIN into exactly the columns the rows were dumped from. */
export function copyFromSql(t: Pick<TableCount, 'schema' | 'name' | 'columns'>): string {
  return `COPY ${qualifiedIdent(t)}${columnsClause(t)} FROM STDIN`;
}

/** A ctid block range [fromBlock, toBlock) of a table; toBlock undefined = to the end. */
export interface BlockRange {
  fromBlock: number;
  toBlock?: number;
}

/**
 * COPY of one table's rows (ONLY: not its inheritance children), optionally one block range of it
 * (TID range scan, PostgreSQL 14+). A whole table is copied as `COPY t (cols) TO`, which reads only
 * that table too and measured 5–20% faster than the query form.
 */
export function copyToSql(t: Pick<TableCount, 'schema' | 'name' | 'columns'>, range?: BlockRange): string {
  if (!range || (range.fromBlock === 0 && range.toBlock === undefined)) return `COPY ${qualifiedIdent(t)}${columnsClause(t)} TO STDOUT`;
  const where: string[] = [];
  const block = (n: number) => {
    if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`block number ${n} is outside 0..2^32-1`);
    return `'(${n},0)'::pg_catalog.tid`;
  };
  if (range && range.fromBlock > 0) where.push(`ctid OPERATOR(pg_catalog.>=) ${block(range.fromBlock)}`);
  if (range?.toBlock !== undefined) where.push(`ctid OPERATOR(pg_catalog.<) ${block(range.toBlock)}`);
  return `COPY (SELECT ${columnList(t)} FROM ONLY ${qualifiedIdent(t)}${where.length ? ` WHERE ${where.join(' AND ')}` : ''}) TO STDOUT`;
}
