import { qualifiedName, type Manifest, type TableCount } from '../catalog/manifest';
import { LifelineError } from '../errors';
import { quoteIdent } from '../postgres/connection';

/**
 * How `--tables` values name tables. Three spellings are accepted:
 *   - the name as the restore plan prints it, `schema.table` (schema and table may hold dots: the
 *     whole text is compared with each table's printed name, never split);
 *   - pg_dump's spelling: parts separated by unquoted dots, a double-quoted part taken exactly (`""`
 *     is one `"`), an unquoted part folded to lower case as PostgreSQL folds identifiers (ASCII
 *     letters): `"Sales Q1"."Order items"`, `PUBLIC.users`, `sales."Order items"`, optionally with the
 *     database first (`db.schema.table`, which must be the backup's database);
 *   - a bare table name, in any schema.
 * A value that could mean two tables is refused as ambiguous, listing how to name each one.
 */

/** Which characters pg_dump would read as a wildcard outside double quotes: Lifeline names tables one by one. */
const WILDCARD = /[*?]/;

/** A value in pg_dump's spelling, as identifier parts (1 to 3), or why it is not one. */
export type PgSpelling = { parts: string[] } | { problem: string };

/** Reads pg_dump's spelling of a (possibly qualified) name: quoted parts exact, unquoted parts folded to lower case. */
export function parsePgSpelling(value: string): PgSpelling {
  const parts: string[] = [];
  let current = '';
  let quotedPart = false;
  let inQuotes = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (inQuotes) {
      if (ch !== '"') current += ch;
      else if (value[i + 1] === '"') {
        current += '"';
        i++;
      } else inQuotes = false;
    } else if (ch === '"') {
      inQuotes = true;
      quotedPart = true;
    } else if (ch === '.') {
      if (!current && !quotedPart) return { problem: 'it has an empty name part (two dots, or a dot at either end)' };
      parts.push(current);
      current = '';
      quotedPart = false;
    } else if (WILDCARD.test(ch)) {
      return { problem: `it holds the wildcard ${ch} outside double quotes: name each table (inside double quotes ${ch} is an ordinary character)` };
    } else {
      // PostgreSQL folds unquoted identifiers' ASCII letters only (downcase_identifier).
      current += ch >= 'A' && ch <= 'Z' ? ch.toLowerCase() : ch;
    }
  }
  if (inQuotes) return { problem: 'a double quote is not closed (write a double quote inside a quoted name as "")' };
  if (!current && !quotedPart) return { problem: 'it has an empty name part (two dots, or a dot at either end)' };
  parts.push(current);
  if (parts.length > 3) return { problem: `it has ${parts.length} dot-separated parts; at most database.schema.table` };
  return { parts };
}

/** A table's name in pg_dump's spelling, every part quoted: names exactly one table, whatever it holds. */
export function pgDumpSpelling(t: Pick<TableCount, 'schema' | 'name'>): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}

/**
 * The name a plan carries for a table: as printed (`schema.table`), or, where another table of the
 * backup prints alike (public."x.y" and "public.x".y), pg_dump's fully quoted spelling, so that the
 * name stands for that table alone.
 */
export function planName(t: TableCount, all: readonly TableCount[]): string {
  const printed = qualifiedName(t);
  return all.some((o) => o !== t && qualifiedName(o) === printed) ? pgDumpSpelling(t) : printed;
}

/** The tables (and partitioned parents) of a backup that a value can mean, by the rules above. */
function candidatesFor(value: string, holds: readonly TableCount[], database: string): { matches: TableCount[]; problem?: string } {
  const printed = holds.filter((t) => qualifiedName(t) === value);
  if (printed.length) return { matches: printed };
  const spelled = parsePgSpelling(value);
  const bySpelling = (() => {
    if ('problem' in spelled) return [];
    const p = spelled.parts;
    if (p.length === 3 && p[0] !== database) return [];
    if (p.length === 1) return holds.filter((t) => t.name === p[0]);
    return holds.filter((t) => t.schema === p[p.length - 2] && t.name === p[p.length - 1]);
  })();
  const threePartProblem =
    'parts' in spelled && spelled.parts.length === 3 && spelled.parts[0] !== database
      ? `it names database ${JSON.stringify(spelled.parts[0])}, but the backup is of ${JSON.stringify(database)}`
      : undefined;
  // With a double quote the value can only be pg_dump's spelling; without, it may also be a bare name as it prints.
  const bare = value.includes('"') ? [] : holds.filter((t) => t.name === value);
  const matches = [...new Set([...bySpelling, ...bare])];
  return { matches, problem: matches.length ? undefined : 'problem' in spelled ? spelled.problem : threePartProblem };
}

/** One requested value, matched to exactly one table or partitioned parent of the backup (or why not). */
export type TableRequest = { value: string; table: TableCount } | { value: string; problem: string };

export function matchTableRequest(manifest: Pick<Manifest, 'id' | 'database' | 'tables'>, value: string): TableRequest {
  const holds = manifest.tables;
  const { matches, problem } = candidatesFor(value, holds, manifest.database);
  if (matches.length === 1) return { value, table: matches[0]! };
  if (matches.length > 1) {
    return { value, problem: `${JSON.stringify(value)} is ambiguous: it can name ${matches.map(pgDumpSpelling).join(' or ')} (write one of these, in pg_dump's spelling)` };
  }
  return { value, problem: `${JSON.stringify(value)} is not in backup ${manifest.id}${problem ? ` (read as pg_dump's spelling, ${problem})` : ''}` };
}

/**
 * Maps requested values to the backup's tables and partitioned parents; every value that fails is
 * named at once, with what is allowed. Returns the plan's names (planName), in the order asked, once each.
 */
export function resolveTableRequests(manifest: Pick<Manifest, 'id' | 'database' | 'tables'>, requested: string[]): TableCount[] {
  const results = requested.map((v) => matchTableRequest(manifest, v));
  const problems = results.flatMap((r) => ('problem' in r ? [r.problem] : []));
  if (problems.length) {
    throw new LifelineError('UnknownTable', `${problems.join('; ')}. The backup holds: ${manifest.tables.map((t) => planName(t, manifest.tables)).join(', ')}`, {
      hint: 'name a table as the plan prints it (schema.table), as pg_dump does ("Sales Q1"."Order items": double quotes keep case, spaces and dots; unquoted names fold to lower case), or by its bare name if only one schema has it',
    });
  }
  return [...new Set(results.map((r) => (r as { table: TableCount }).table))];
}

/** `--tables a,"b,c".d`: a list split at commas outside double quotes, each value trimmed. */
export function splitTableList(text: string): string[] {
  const values: string[] = [];
  let current = '';
  let inQuotes = false;
  for (const ch of text) {
    if (ch === '"') inQuotes = !inQuotes; // "" inside quotes toggles twice: still inside
    if (ch === ',' && !inQuotes) {
      values.push(current);
      current = '';
    } else current += ch;
  }
  values.push(current);
  return values.map((v) => v.trim()).filter(Boolean);
}
