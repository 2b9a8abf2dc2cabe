import { spawn } from 'node:child_process';
import { qualifiedName, splitQualifiedName, type Manifest } from '../catalog/manifest';
import type { RestoreChecks } from '../config/config';
import { IntegrityError } from '../errors';
import { countRows } from '../postgres/snapshot';
import { withConnection, type ResolvedConnection } from '../postgres/connection';
import type { RestoreVerification } from '../../workflows/definitions';

/** The URL with its password, for the operator's command only (its environment, never Temporal). */
function urlWithPassword(conn: ResolvedConnection): string {
  const url = new URL(conn.safeUrl);
  if (conn.password !== undefined) url.password = encodeURIComponent(conn.password);
  return url.toString();
}

function runCommand(command: string, env: NodeJS.ProcessEnv, signal?: AbortSignal, timeoutMs = 10 * 60_000): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    // A cancelled step ends its command too (the operator's tests may run long).
    const child = spawn('sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, signal });
    let output = '';
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-4000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', (err) => resolve({ ok: false, detail: err.message }));
    child.once('close', (code, signal) => resolve({ ok: code === 0, detail: `${signal ? `killed by ${signal}` : `exit ${code}`}: ${output.trim().split('\n').slice(-15).join('\n')}` }));
  });
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
  options: { schemaOnly: boolean; checks: RestoreChecks; signal?: AbortSignal },
): Promise<RestoreVerification> {
  const recorded = new Map(manifest.tables.map((t) => [qualifiedName(t), t.rows]));
  const result: RestoreVerification = { tables: [], checks: [] };
  await withConnection(conn, async (client) => {
    await client.query('SELECT 1');
    for (const table of tables) {
      const expected = options.schemaOnly ? 0 : (recorded.get(table) ?? 0);
      result.tables.push({ table, expected, actual: await countRows(client, { ...splitQualifiedName(table), kind: 'table' }) });
    }
    for (const sql of options.checks.sql ?? []) {
      try {
        const { rows } = await client.query(sql);
        const value = rows[0] ? Object.values(rows[0])[0] : undefined;
        result.checks.push({ name: `sql: ${sql}`, ok: value === true, detail: value === true ? undefined : `returned ${JSON.stringify(value)}` });
      } catch (err) {
        result.checks.push({ name: `sql: ${sql}`, ok: false, detail: (err as Error).message });
      }
    }
  });
  if (options.checks.command) {
    const run = await runCommand(options.checks.command, { ...process.env, DATABASE_URL: urlWithPassword(conn) }, options.signal);
    result.checks.push({ name: `command: ${options.checks.command}`, ok: run.ok, detail: run.detail });
  }
  const wrongCounts = result.tables.filter((t) => t.actual !== t.expected);
  const failedChecks = result.checks.filter((c) => !c.ok);
  if (wrongCounts.length || failedChecks.length) {
    throw new IntegrityError(
      [
        ...wrongCounts.map((t) => `${t.table} has ${t.actual} rows, the backup recorded ${t.expected}`),
        ...failedChecks.map((c) => `${c.name} failed${c.detail ? `: ${c.detail}` : ''}`),
      ].join('; '),
      'the restored database did not pass verification; the target was not replaced',
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
    out.push({ name: `health: ${checks.healthUrl}`, ok, detail: response instanceof Error ? response.message : `HTTP ${response.status}` });
  }
  return out;
}
