import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Where `lifeline up` keeps its demo database, relative to the folder it runs in. */
export const DEMO_HOME = '.lifeline';
export const DEMO_CLUSTER_DIR = path.join(DEMO_HOME, 'demo-postgres');
export const DEMO_PASSWORD_FILE = path.join(DEMO_HOME, 'demo-db-password');

/**
 * The demo database's URL, once `lifeline up` has created it: other commands run in the same folder
 * (`npx lifeline list`) then find it without DATABASE_URL.
 */
export function demoDatabaseUrl(cwd: string): string | undefined {
  const portFile = path.join(cwd, DEMO_CLUSTER_DIR, 'port');
  const passwordFile = path.join(cwd, DEMO_PASSWORD_FILE);
  if (!existsSync(portFile) || !existsSync(passwordFile)) return undefined;
  const password = readFileSync(passwordFile, 'utf8').trim();
  const port = readFileSync(portFile, 'utf8').trim();
  return `postgresql://moneyflow:${encodeURIComponent(password)}@127.0.0.1:${port}/moneyflow`;
}
