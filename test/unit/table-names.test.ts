import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TableCount } from '../../src/catalog/manifest';
import { backupTables, leafTables } from '../../src/restore/backup-tables';
import { resolveTables } from '../../src/restore/plan';
import { matchTableRequest, parsePgSpelling, planName, resolveTableRequests, splitTableList } from '../../src/restore/table-names';

let oid = 100;
const t = (schema: string, name: string, extra: Partial<TableCount> = {}): TableCount => ({ schema, name, kind: 'table', rows: 1, oid: oid++, ...extra });

const salesQ1 = t('Sales Q1', 'Order items');
const users = t('public', 'users');
const mixedUpper = t('public', 'Mixed');
const mixedLower = t('public', 'mixed');
const dotted = t('public', 'dot.ted');
const lookalike = t('public.dot', 'ted');
const quoteName = t('public', 'say "hi"');
const otherUsers = t('audit', 'users');
const payment = t('public', 'payment', { kind: 'partitioned', rows: 3 });
const payment2024 = t('public', 'payment_2024', { parentOid: payment.oid, rows: 1 });
const payment2025 = t('public', 'payment_2025', { kind: 'partitioned', parentOid: payment.oid, rows: 2 });
const payment2025a = t('public', 'payment_2025_a', { parentOid: payment2025.oid, rows: 2 });
const manifest = {
  id: 'shop-20260101T000000Z-full',
  database: 'shop',
  format: 'parts-v1' as const,
  tables: [salesQ1, users, mixedUpper, mixedLower, dotted, lookalike, quoteName, otherUsers, payment, payment2024, payment2025, payment2025a],
};
const only = (value: string) => {
  const r = matchTableRequest(manifest, value);
  if ('problem' in r) throw new Error(r.problem);
  return r.table;
};
const problem = (value: string) => {
  const r = matchTableRequest(manifest, value);
  assert.ok('problem' in r, `${value} is refused`);
  return r.problem;
};

describe('--tables values: pg_dump spelling, plan names and bare names', () => {
  it('parses pg_dump spelling: quoted parts exact ("" is a quote), unquoted parts folded to lower case', () => {
    assert.deepEqual(parsePgSpelling('"Sales Q1"."Order items"'), { parts: ['Sales Q1', 'Order items'] });
    assert.deepEqual(parsePgSpelling('PUBLIC.Users'), { parts: ['public', 'users'] });
    assert.deepEqual(parsePgSpelling('public."say ""hi"""'), { parts: ['public', 'say "hi"'] });
    assert.deepEqual(parsePgSpelling('"dot.ted"'), { parts: ['dot.ted'] });
    assert.deepEqual(parsePgSpelling('Ab"Cd"Ef'), { parts: ['abCdef'] }, 'quoted and unquoted pieces of one part');
    assert.deepEqual(parsePgSpelling('ÉTÉ'), { parts: ['ÉtÉ'] }, 'only ASCII letters fold, as PostgreSQL folds identifiers');
    assert.deepEqual(parsePgSpelling('shop.public.users'), { parts: ['shop', 'public', 'users'] });
    assert.deepEqual(parsePgSpelling('""'), { parts: [''] });
    for (const bad of ['"open', 'a..b', '.users', 'users.', 'a.b.c.d', 'pay*', 'user?']) assert.ok('problem' in parsePgSpelling(bad), bad);
    assert.deepEqual(parsePgSpelling('"pay*"'), { parts: ['pay*'] }, 'a wildcard inside quotes is an ordinary character');
  });

  it('matches the pg_dump spelling of an odd name, and plain schema.table and bare names as before', () => {
    assert.equal(only('"Sales Q1"."Order items"'), salesQ1);
    assert.equal(only('Sales Q1.Order items'), salesQ1, 'as the plan prints it');
    assert.equal(only('public.users'), users);
    assert.equal(only('PUBLIC.USERS'), users, 'unquoted: folded to lower case');
    assert.equal(only('"public"."users"'), users);
    assert.equal(only('shop.public.users'), users, 'with the backup database first');
    assert.equal(only('public."say ""hi"""'), quoteName);
    assert.equal(only('public.say "hi"'), quoteName, 'printed names are compared whole');
    assert.equal(only('public.Mixed'), mixedUpper, 'a printed name is taken exactly');
    assert.equal(only('public.mixed'), mixedLower);
    assert.equal(only('"Mixed"'), mixedUpper);
    assert.equal(only('payment'), payment, 'a partitioned parent may be named');
  });

  it('refuses a value that could mean two tables, showing how to name each', () => {
    assert.match(problem('users'), /"users" is ambiguous: it can name "public"."users" or "audit"."users"/);
    assert.match(problem('Mixed'), /ambiguous.*"public"."Mixed".*"public"."mixed"|ambiguous.*"public"."mixed".*"public"."Mixed"/, 'bare as printed, or folded');
    assert.match(problem('public.dot.ted'), /ambiguous/, 'two tables print alike');
    assert.equal(only('public."dot.ted"'), dotted, 'pg_dump spelling tells them apart');
    assert.equal(only('"public.dot".ted'), lookalike);
  });

  it('says which value is wrong and what is allowed', () => {
    assert.match(problem('nope'), /"nope" is not in backup shop-/);
    assert.match(problem('"open'), /"\\"open" is not in backup .*double quote is not closed/);
    assert.match(problem('pay*'), /wildcard \*/);
    assert.match(problem('other.public.users'), /names database "other", but the backup is of "shop"/);
    assert.throws(() => resolveTableRequests(manifest, ['nope', 'users', 'public.users']), (err: Error & { hint?: string }) => {
      assert.match(err.message, /"nope" is not in backup.*; "users" is ambiguous/);
      assert.match(err.hint!, /pg_dump/);
      return true;
    });
  });

  it('gives plan names that name one table each, and reads them back', () => {
    assert.equal(planName(users, manifest.tables), 'public.users');
    assert.equal(planName(dotted, manifest.tables), '"public"."dot.ted"', 'printed alike: quoted');
    assert.equal(planName(lookalike, manifest.tables), '"public.dot"."ted"');
    assert.deepEqual(resolveTables(manifest as never, ['public."dot.ted"', 'PUBLIC.USERS', 'public.users']), ['"public"."dot.ted"', 'public.users']);
    assert.deepEqual(backupTables(manifest, ['"public"."dot.ted"']), [dotted]);
    assert.deepEqual(backupTables(manifest, ['public.dot.ted']), [dotted, lookalike], 'older plans: a printed name stands for every table printed alike');
  });

  it('a partitioned parent stands for all its partitions, sub-partitions included', () => {
    assert.deepEqual(leafTables(manifest, [payment]), [payment2024, payment2025a]);
    assert.deepEqual(leafTables(manifest, [payment2025, payment2025a, users]), [users, payment2025a]);
    const old = { id: 'x', tables: [payment, t('public', 'payment_2024', { rows: 1 })] };
    assert.throws(() => leafTables(old, [payment]), /does not record which partitions.*/);
  });

  it('splits a --tables list at commas outside double quotes', () => {
    assert.deepEqual(splitTableList('users, "Sales, Q1"."Order ""a,b"" items" ,public.x'), ['users', '"Sales, Q1"."Order ""a,b"" items"', 'public.x']);
    assert.deepEqual(splitTableList(' , users,'), ['users']);
  });
});
