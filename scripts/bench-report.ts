/**
 * How the benchmarks print and keep their numbers: a table with one column per BACKUP_PARALLEL_JOBS
 * value (a range when BENCH_REPEAT > 1), and each run's numbers as JSON under .bench/ (gitignored), so
 * that a run at one BENCH_SIZE_MB can be set against the last run at another (1 GB against 4 GB).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { root } from './bench-world';

export const MiB = 1024 * 1024;
const RESULTS = path.join(root, '.bench');

/** The measured values of one metric (one per repeat); empty when it was not measured or failed. */
export type Values = number[];

/** BENCH_JOBS (default "1,2"): the BACKUP_PARALLEL_JOBS values, one column each. */
export function benchJobs(): number[] {
  const jobs = (process.env.BENCH_JOBS ?? '1,2').split(',').map((j) => Number(j.trim()));
  if (!jobs.length || jobs.some((j) => !Number.isInteger(j) || j < 1 || j > 64)) throw new Error(`BENCH_JOBS=${process.env.BENCH_JOBS} must list whole numbers 1..64, like "1,2"`);
  return jobs;
}

/** BENCH_REPEAT (default 1): how many times each measurement runs. */
export function benchRepeat(): number {
  const n = Number(process.env.BENCH_REPEAT ?? 1);
  if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error(`BENCH_REPEAT=${process.env.BENCH_REPEAT} must be a whole number 1..20`);
  return n;
}

const range = (values: Values, show: (n: number) => string): string => {
  if (!values.length) return '—';
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return show(lo) === show(hi) ? show(lo) : `${show(lo)}–${show(hi)}`;
};

export const seconds = (v: Values) => (v.length ? `${range(v.map((ms) => ms / 1000), (s) => s.toFixed(1))} s` : '—');
export const mib = (v: Values) => (v.length ? `${range(v.map((b) => b / MiB), (m) => m.toFixed(m < 10 ? 2 : 1))} MiB` : '—');
export const percent = (v: Values) => (v.length ? `${range(v.map((x) => x * 100), (p) => p.toFixed(0))} %` : '—');
export const times = (v: Values) => (v.length ? `${range(v, (x) => x.toFixed(2))}×` : '—');
export const minutes = (v: Values) => (v.length ? `${range(v.map((ms) => ms / 60_000), (m) => m.toFixed(1))} min` : '—');
export const count = (v: Values) => range(v, (n) => n.toLocaleString('en'));
/** Sizes that may be small (extra disk, unencrypted bytes): in B, KiB or MiB by the largest value. */
export const bytes = (v: Values) => {
  if (!v.length) return '—';
  const top = Math.max(...v);
  const [unit, div] = top >= MiB ? ['MiB', MiB] : top >= 1024 ? ['KiB', 1024] : ['B', 1];
  return `${range(v.map((b) => b / div), (n) => n.toFixed(div === 1 ? 0 : 1))} ${unit}`;
};

/** a[i] / b[i] for each repeat (b may hold one value for all). */
export function ratios(a: Values, b: Values): Values {
  if (!a.length || !b.length) return [];
  return a.map((x, i) => x / (b[i] ?? b[0]!));
}

export type Row = [label: string, cells: string[], goal?: string];

/** Prints a table: a label column, one column per jobs value, and the goal. */
export function printTable(title: string, jobs: number[], rows: Row[]): void {
  const header: Row = [title, jobs.map((j) => `jobs=${j}`), 'goal'];
  const all = [header, ...rows];
  const labelWidth = Math.max(...all.map((r) => r[0].length));
  const cellWidth = jobs.map((_, i) => Math.max(...all.map((r) => r[1][i]?.length ?? 0)));
  for (const [label, cells, goal] of all) {
    const row = cells.map((c, i) => c.padStart(cellWidth[i]!)).join('   ');
    console.log(`${label.padEnd(labelWidth)}   ${row}${goal ? `   ${goal}` : ''}`.trimEnd());
  }
}

export interface Results {
  kind: 'backup' | 'restore';
  sizeMb: number;
  databaseBytes: number;
  date: string;
  commit: string;
  cores: number;
  settings: string[];
  /** metric → jobs → values. */
  metrics: Record<string, Record<string, Values>>;
}

/** A run's results and the two ways the scripts use them: record a value, read a metric's values. */
export function newResults(kind: Results['kind'], db: { bytes: number }, run: { sizeMb: number; settings: string[] }): {
  results: Results;
  put: (key: string, jobs: number | 'all', value: number | undefined) => void;
  get: (key: string, jobs: number | 'all') => Values;
} {
  const results: Results = { kind, sizeMb: run.sizeMb, databaseBytes: db.bytes, date: new Date().toISOString(), commit: commitOf(), cores: cores(), settings: run.settings, metrics: {} };
  return {
    results,
    // A measurement that failed still gets its (empty) cell.
    put: (key, jobs, value) => {
      const list = ((results.metrics[key] ??= {})[String(jobs)] ??= []);
      if (value !== undefined && Number.isFinite(value)) list.push(value);
    },
    get: (key, jobs) => results.metrics[key]?.[String(jobs)] ?? [],
  };
}

/** The opening line of a run: what was measured, on what, how often. */
export function describeRun(db: { name: string; bytes: number; largest: { table: string; rows: number; bytes: number } }, results: Results, repeat: number): string {
  return (
    `Ledger ${db.name}: ${(db.bytes / MiB).toFixed(0)} MiB (pg_database_size); largest table ${db.largest.table}, ` +
    `${db.largest.rows.toLocaleString('en')} rows, ${(db.largest.bytes / MiB).toFixed(0)} MiB with its indexes ` +
    `(${((db.largest.bytes / db.bytes) * 100).toFixed(0)} %). ${results.cores} cores; commit ${results.commit}; ` +
    `${results.settings.length ? results.settings.join(' ') : 'default settings'}; each measurement runs ${repeat} time(s), ranges are min–max.\n`
  );
}

export function commitOf(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim();
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

export const cores = () => cpus().length;

/** Writes .bench/<kind>-<size>mb.json and returns the file's path. */
export function saveResults(results: Results): string {
  mkdirSync(RESULTS, { recursive: true });
  const file = path.join(RESULTS, `${results.kind}-${results.sizeMb}mb.json`);
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  return file;
}

/** The last saved results of the same kind at other sizes, smallest first. */
export function otherSizes(results: Results): Results[] {
  if (!existsSync(RESULTS)) return [];
  return readdirSync(RESULTS)
    .filter((f) => f.startsWith(`${results.kind}-`) && f.endsWith('mb.json'))
    .map((f) => JSON.parse(readFileSync(path.join(RESULTS, f), 'utf8')) as Results)
    .filter((r) => r.sizeMb !== results.sizeMb)
    .sort((a, b) => a.sizeMb - b.sizeMb);
}

/**
 * For each other size on file: this run's metric against that run's (the larger size over the
 * smaller), per jobs value, using each side's median.
 */
export function compareSizes(results: Results, metrics: Array<{ key: string; label: string; goal: string }>): void {
  const others = otherSizes(results);
  if (!others.length) {
    console.log(`\nNo results at another BENCH_SIZE_MB in .bench/ yet: run this benchmark at another size (1024 and 4096) to compare.`);
    return;
  }
  const median = (v: Values | undefined) => {
    if (!v?.length) return undefined;
    const s = [...v].sort((a, b) => a - b);
    return s[Math.floor((s.length - 1) / 2)];
  };
  for (const other of others) {
    const [small, large] = other.sizeMb < results.sizeMb ? [other, results] : [results, other];
    console.log(`\n${large.sizeMb} MiB (${large.date}, ${large.commit}) against ${small.sizeMb} MiB (${small.date}, ${small.commit}):`);
    for (const m of metrics) {
      const cells = Object.keys(results.metrics[m.key] ?? {}).map((jobs) => {
        const a = median(large.metrics[m.key]?.[jobs]);
        const b = median(small.metrics[m.key]?.[jobs]);
        return `jobs=${jobs} ${a !== undefined && b ? `${(a / b).toFixed(2)}×` : '—'}`;
      });
      console.log(`  ${m.label}: ${cells.join('   ')}   (goal ${m.goal})`);
    }
  }
}
