/**
 * The benchmarks' database: the MoneyFlow schema (users, accounts, a partitioned `transactions`,
 * receipts with a large object, audit.events) at a small size, plus one large unpartitioned table,
 * `public.ledger_entries`, that holds almost all of BENCH_SIZE_MB: a ledger dominated by one table, as
 * in issue 11 (about 6 million rows at 1 GB). One table that size is what `pg_restore -j` cannot split.
 * The seeded cluster stays in .lifeline/bench-postgres, so later runs skip seeding.
 */
import path from 'node:path';
import pg from 'pg';
import { PrivateCluster } from '../src/infra/postgres-cluster';
import { seedMoneyFlow } from '../src/infra/moneyflow-seed';
import { quoteIdent } from '../src/postgres/connection';

const MB = 1024 * 1024;
/** On-disk bytes per ledger_entries row: heap, primary key and one index (measured: 181). */
const BYTES_PER_ROW = 181;
/** The small MoneyFlow tables beside the ledger (about 50 MiB on disk with the empty database's 7 MiB). */
const SMALL = { users: 20_000, transactions: 100_000 };
/** A database's comment once its seeding finished: an interrupted seed is dropped and started again. */
const SEEDED = 'lifeline bench ledger v2 (one large table), seeding complete';
const BATCH_ROWS = 1_000_000;

const LEDGER = `
CREATE TABLE ledger_entries (
  id bigint GENERATED ALWAYS AS IDENTITY,
  account_id bigint NOT NULL,
  category_id int,
  amount numeric(12,2) NOT NULL,
  currency char(3) NOT NULL,
  booked_at timestamptz NOT NULL,
  memo text
)`;

const WORDS = `coffee groceries rent salary refund transfer fuel pharmacy bakery cinema subscription insurance
  electricity water internet phone gym books restaurant taxi train flight hotel gift charity dividend interest
  café crème brûlée Zoë Müller São-Paulo 東京 Москва`.split(/\s+/).filter(Boolean);

export interface BenchDatabase {
  cluster: PrivateCluster;
  /** The database's name on the server, also its name in Lifeline's configuration. */
  name: string;
  /** Superuser URL (trusted on loopback, no password). */
  url: string;
  /** pg_database_size. */
  bytes: number;
  largest: { table: string; rows: number; bytes: number };
}

export function benchSizeMb(): number {
  const size = Number(process.env.BENCH_SIZE_MB ?? 1024);
  if (!Number.isInteger(size) || size < 16) throw new Error(`BENCH_SIZE_MB=${process.env.BENCH_SIZE_MB} must be a whole number of MiB, at least 16`);
  return size;
}

async function seed(url: string, sizeMb: number, say: (line: string) => void): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await seedMoneyFlow(client, SMALL);
    const [{ n }] = (await client.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n')).rows as [{ n: string }];
    const rows = Math.max(10_000, Math.round((sizeMb * MB - Number(n)) / BYTES_PER_ROW));
    say(`Seeding ${rows.toLocaleString('en')} rows of public.ledger_entries (once; about a minute per GB)…`);
    await client.query(LEDGER);
    await client.query('SELECT setseed(0.17)');
    for (let done = 0; done < rows; done += BATCH_ROWS) {
      await client.query(
        `INSERT INTO ledger_entries (account_id, category_id, amount, currency, booked_at, memo)
         SELECT 1 + floor(random() * $2)::bigint, 1 + floor(random() * 10)::int,
                round((random() * 2000 - 1000)::numeric, 2), (ARRAY['EUR','USD','CHF'])[1 + floor(random() * 3)::int],
                timestamptz '2024-01-01' + random() * interval '1000 days',
                w[1 + floor(random() * array_length(w, 1))::int] || ' ' || w[1 + floor(random() * array_length(w, 1))::int]
                  || ' ref ' || md5(random()::text)
         FROM generate_series(1, $1) g, (SELECT $3::text[] AS w) words`,
        [Math.min(BATCH_ROWS, rows - done), SMALL.users * 3, WORDS],
      );
    }
    await client.query('ALTER TABLE ledger_entries ADD PRIMARY KEY (id)');
    await client.query('ALTER TABLE ledger_entries ADD FOREIGN KEY (account_id) REFERENCES accounts(id)');
    await client.query('CREATE INDEX ON ledger_entries (account_id, booked_at)');
    // Hint bits and the visibility map set now, so that the first timed read does not pay for writing them.
    await client.query('VACUUM (FREEZE, ANALYZE)');
    await client.query(`COMMENT ON DATABASE ${quoteIdent(await databaseName(client))} IS '${SEEDED}'`);
  } finally {
    await client.end();
  }
}

async function databaseName(client: pg.Client): Promise<string> {
  return (await client.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d;
}

/** Starts the bench cluster and returns the ledger database of BENCH_SIZE_MB, seeding it first if needed. */
export async function benchDatabase(root: string, say: (line: string) => void = console.log): Promise<BenchDatabase> {
  const sizeMb = benchSizeMb();
  const cluster = await new PrivateCluster(path.join(root, '.lifeline', 'bench-postgres')).start();
  const name = `bench_ledger_${sizeMb}mb`;
  const [state] = await cluster.sql<{ comment: string | null }>(
    `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = '${name}'`,
  );
  if (state?.comment !== SEEDED) {
    if (state) say(`${name} exists but its seeding did not finish: dropping it and seeding again.`);
    await cluster.sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await cluster.sql(`CREATE DATABASE ${name}`);
    const started = Date.now();
    await seed(cluster.adminUrl(name), sizeMb, say);
    say(`Seeded ${name} in ${((Date.now() - started) / 1000).toFixed(0)} s.`);
  }
  const url = cluster.adminUrl(name);
  const [size] = await cluster.sql<{ n: string }>(`SELECT pg_database_size('${name}') AS n`);
  const [largest] = await cluster.sql<{ t: string; rows: string; bytes: string }>(
    `SELECT n.nspname || '.' || c.relname AS t, c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS bytes
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 1`,
    name,
  );
  return { cluster, name, url, bytes: Number(size!.n), largest: { table: largest!.t, rows: Number(largest!.rows), bytes: Number(largest!.bytes) } };
}
