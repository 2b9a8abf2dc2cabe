import pg from 'pg';

/**
 * Holds a backup inside its dump: `table` (a trusted test literal, e.g. public.users) stays locked
 * ACCESS EXCLUSIVE until the returned session commits or ends.
 */
export async function lockTable(url: string, table: string): Promise<pg.Client> {
  const locker = new pg.Client({ connectionString: url });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  return locker;
}
