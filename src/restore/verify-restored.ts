import { qualifiedName, type Manifest } from '../catalog/manifest';
import type { RestoreChecks } from '../config/config';
import { IntegrityError } from '../errors';
import { countRows } from '../postgres/snapshot';
import { OPERATOR_SEARCH_PATH, withConnection, type ResolvedConnection } from '../postgres/connection';
import { backendPid } from '../postgres/waits';
import type { RestoreVerification } from '../../workflows/definitions';
import { backupTables } from './backup-tables';
import { runCheckCommand } from './check-command';
import { redact } from '../security/redact';

/** Tables and checks done so far; the session doing them; whether the operator's command runs (it has its own timeout). */
export interface VerifyProgress {
  done: number;
  pid?: number;
  command?: boolean;
}

/**
 * Post-restore verification: the database answers; each restored table has exactly the rows the
 * manifest recorded (none for a schema-only restore); then the operator's SQL assertions and command.
 * Throws IntegrityError naming every failed check.
 */
export async function verifyRestored(
  conn: ResolvedConnection,
  manifest: Manifest,
  tables: string[],
  options: { schemaOnly: boolean; checks: RestoreChecks; signal?: AbortSignal; onProgress?: (p: VerifyProgress) => void },
): Promise<RestoreVerification> {
  const result: RestoreVerification = { tables: [], checks: [] };
  // Per table and per check: a long verification heartbeats as it goes (and its session can be asked about).
  const progress = (pid?: number) => options.onProgress?.({ pid, done: result.tables.length + result.checks.length });
  await withConnection(conn, async (client) => {
    await client.query('SELECT 1');
    progress(backendPid(client));
    for (const table of backupTables(manifest, tables)) {
      const expected = options.schemaOnly ? 0 : table.rows;
      result.tables.push({ table: qualifiedName(table), expected, actual: await countRows(client, table) });
      progress(backendPid(client));
    }
    // The operator's SQL is written for the usual search path; the session began with pg_catalog alone.
    if (options.checks.sql?.length) await client.query(`SELECT pg_catalog.set_config('search_path', $1, false)`, [OPERATOR_SEARCH_PATH]);
    for (const sql of options.checks.sql ?? []) {
      try {
        const { rows } = await client.query(sql);
        const value = rows[0] ? Object.values(rows[0])[0] : undefined;
        result.checks.push({ name: `sql: ${sql}`, ok: value === true, detail: value === true ? undefined : `returned ${JSON.stringify(value)}` });
      } catch (err) {
        result.checks.push({ name: `sql: ${sql}`, ok: false, detail: (err as Error).message });
      }
      progress(backendPid(client));
    }
  });
  if (options.checks.command) {
    options.onProgress?.({ done: result.tables.length + result.checks.length, command: true });
    const run = await runCheckCommand(options.checks.command, conn, { database: manifest.database, backupId: manifest.id }, options.signal);
    result.checks.push({ name: redact(`command: ${options.checks.command}`), ok: run.ok, detail: run.detail });
  }
  const wrongCounts = result.tables.filter((t) => t.actual !== t.expected);
  const failedChecks = result.checks.filter((c) => !c.ok);
  if (wrongCounts.length || failedChecks.length) {
    throw new IntegrityError(
      [
        ...wrongCounts.map((t) => `${t.table} has ${t.actual} rows, the backup recorded ${t.expected}`),
        ...failedChecks.map((c) => `${c.name} failed${c.detail ? `: ${c.detail}` : ''}`),
      ].join('; '),
      // Not "the target was not replaced": a table restore has committed by now (the restore's notice says what changed).
      'the restored data did not pass verification',
      { tables: wrongCounts, checks: failedChecks },
    );
  }
  return result;
}

/** After the swap: the target answers under its own name, and the application's health URL is green. */
export async function checkInPlace(conn: ResolvedConnection, checks: RestoreChecks): Promise<RestoreVerification['checks']> {
  const out: RestoreVerification['checks'] = [];
  await withConnection(conn, (client) => client.query('SELECT 1'));
  out.push({ name: `database ${conn.label} answers`, ok: true });
  if (checks.healthUrl) {
    const response = await fetch(checks.healthUrl, { signal: AbortSignal.timeout(30_000) }).catch((err: Error) => err);
    const ok = !(response instanceof Error) && response.ok;
    out.push({ name: redact(`health: ${checks.healthUrl}`), ok, detail: response instanceof Error ? redact(response.message) : `HTTP ${response.status}` });
  }
  return out;
}
