import pg from 'pg';

/**
 * A MoneyFlow-like personal-finance database: users, accounts, categories, a ledger partitioned by
 * month, budgets, receipts (bytea), an audit schema (jsonb), non-ASCII names and a large object.
 * Amounts, times and memos are random (setseed makes them repeatable), so dumps compress like real data.
 */
export interface SeedSize {
  users: number;
  transactions: number;
}

export const DEMO_SIZE: SeedSize = { users: 200, transactions: 20_000 };

const SCHEMA = `
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE users (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE,
  full_name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE accounts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name text NOT NULL,
  currency char(3) NOT NULL,
  opened_on date NOT NULL
);
CREATE TABLE categories (
  id int PRIMARY KEY,
  name text NOT NULL,
  parent_id int REFERENCES categories(id)
);
CREATE TABLE transactions (
  id bigint GENERATED ALWAYS AS IDENTITY,
  account_id bigint NOT NULL,
  category_id int REFERENCES categories(id),
  amount numeric(12,2) NOT NULL,
  occurred_at timestamptz NOT NULL,
  memo text,
  PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE transactions_2024 PARTITION OF transactions FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE transactions_2025 PARTITION OF transactions FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE transactions_2026 PARTITION OF transactions FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX ON transactions (account_id, occurred_at);
CREATE TABLE budgets (
  user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  category_id int NOT NULL REFERENCES categories(id),
  month date NOT NULL,
  limit_amount numeric(12,2) NOT NULL,
  PRIMARY KEY (user_id, category_id, month)
);
CREATE TABLE receipts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  image bytea NOT NULL,
  scanned_doc oid
);
CREATE TABLE audit.events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL,
  actor text NOT NULL,
  payload jsonb NOT NULL
);
`;

const WORDS = `coffee groceries rent salary refund transfer fuel pharmacy bakery cinema subscription insurance
  electricity water internet phone gym books restaurant taxi train flight hotel gift charity dividend interest
  market lunch dinner breakfast parking toll repair garden pets school tuition savings bonus café crème brûlée
  Zoë Müller São-Paulo 東京 Москва`.split(/\s+/).filter(Boolean);

export async function seedMoneyFlow(client: pg.Client, size: SeedSize = DEMO_SIZE): Promise<void> {
  await client.query('BEGIN');
  await client.query(SCHEMA);
  await client.query('SELECT setseed(0.42)');
  await client.query(
    `INSERT INTO categories (id, name, parent_id) VALUES
       (1, 'Housing', NULL), (2, 'Food', NULL), (3, 'Transport', NULL), (4, 'Leisure', NULL), (5, 'Income', NULL),
       (6, 'Groceries', 2), (7, 'Restaurants', 2), (8, 'Fuel', 3), (9, 'Café & Crème', 2), (10, 'Rent', 1)`,
  );
  await client.query(
    `INSERT INTO users (email, full_name, created_at)
     SELECT 'user' || g || '@moneyflow.example',
            (ARRAY['Zoë Müller','José Ñúñez','Ørjan Åsheim','李小龍','Анна Петрова','Amélie Poulain','Søren Kierkegaard'])[1 + g % 7] || ' #' || g,
            timestamptz '2024-01-01' + random() * interval '700 days'
     FROM generate_series(1, $1) g`,
    [size.users],
  );
  await client.query(
    `INSERT INTO accounts (user_id, name, currency, opened_on)
     SELECT u.id, a.name, a.cur, date '2024-01-01' + (random() * 600)::int
     FROM users u CROSS JOIN (VALUES ('Checking', 'EUR'), ('Savings', 'EUR'), ('Card', 'USD')) a(name, cur)`,
  );
  await client.query(
    `INSERT INTO transactions (account_id, category_id, amount, occurred_at, memo)
     SELECT 1 + floor(random() * (SELECT max(id) FROM accounts))::bigint,
            1 + floor(random() * 10)::int,
            round((random() * 2000 - 1000)::numeric, 2),
            timestamptz '2024-01-01' + random() * interval '1000 days',
            w[1 + floor(random() * array_length(w, 1))::int] || ' ' || w[1 + floor(random() * array_length(w, 1))::int]
              || ' ref ' || md5(random()::text)
     FROM generate_series(1, $1) g, (SELECT $2::text[] AS w) words`,
    [size.transactions, WORDS],
  );
  await client.query(
    `INSERT INTO budgets (user_id, category_id, month, limit_amount)
     SELECT u.id, c.id, m, round((random() * 800)::numeric, 2)
     FROM users u, categories c, generate_series(date '2026-01-01', date '2026-06-01', interval '1 month') m
     WHERE c.parent_id IS NOT NULL AND u.id % 4 = 0`,
  );
  await client.query(
    `INSERT INTO receipts (user_id, image)
     SELECT 1 + (g % (SELECT max(id) FROM users)), decode(md5(g::text) || md5((g * 7)::text), 'hex') || '\\x00ff00'::bytea
     FROM generate_series(1, GREATEST($1 / 100, 10)) g`,
    [size.transactions],
  );
  await client.query(`UPDATE receipts SET scanned_doc = lo_from_bytea(0, convert_to('scanned receipt №1 — ünïcødé', 'UTF8')) WHERE id = 1`);
  await client.query(
    `INSERT INTO audit.events (at, actor, payload)
     SELECT timestamptz '2024-01-01' + random() * interval '1000 days', 'user' || (1 + g % 50),
            jsonb_build_object('action', (ARRAY['login','export','budget.update','transfer'])[1 + g % 4],
                               'ip', '10.0.' || (g % 255) || '.' || (g * 7 % 255), 'note', 'überweisung ✓', 'n', g)
     FROM generate_series(1, GREATEST($1 / 20, 50)) g`,
    [size.transactions],
  );
  await client.query('COMMIT');
  await client.query('ANALYZE');
}

/** Connects to `url`, seeds it, disconnects. */
export async function seedMoneyFlowAt(url: string, size: SeedSize = DEMO_SIZE): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await seedMoneyFlow(client, size);
  } finally {
    await client.end();
  }
}
