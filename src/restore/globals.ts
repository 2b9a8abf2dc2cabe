import { Writable } from 'node:stream';
import type pg from 'pg';
import type { Manifest } from '../catalog/manifest';
import { IntegrityError, LifelineError } from '../errors';
import { parseGlobals, type GlobalRole, type Globals } from '../parts/globals';
import { GLOBALS_PART } from '../parts/part-names';
import type { PartRecord } from '../parts/part-record';
import { checkPart, openPart, partFailure } from '../parts/read-part';
import { runPipeline } from '../pipeline/run';
import { quoteIdent, withConnection, type ResolvedConnection } from '../postgres/connection';
import { onDatabase } from '../postgres/admin';
import type { BackupStorage } from '../storage/storage';

/**
 * A backup's globals (roles, memberships, tablespaces the database uses) on a restore's target
 * server. A restore onto another server (a new host, a drill server) fails on `role "…" does not
 * exist` where the schema grants to, or is owned by, a role that server lacks; `--with-globals`
 * creates the missing ones first. Existing roles are never altered.
 */

/** A globals part is a few kilobytes; more than this is not one (and is not read into memory). */
const MAX_GLOBALS_BYTES = 64 * 1024 * 1024;

/** The backup's globals part, if it has one (parts backups do). */
export function globalsPartOf(manifest: Pick<Manifest, 'parts'>): PartRecord | undefined {
  return manifest.parts?.find((p) => p.kind === 'globals' && p.name === GLOBALS_PART);
}

/** Reads, checks (SHA-256s, sizes, authenticated decryption) and parses the globals part. */
export async function readGlobals(storage: BackupStorage, manifest: Manifest, dataKey: Buffer, signal?: AbortSignal): Promise<Globals | undefined> {
  const part = globalsPartOf(manifest);
  if (!part) return undefined;
  if (part.rawBytes > MAX_GLOBALS_BYTES) throw new IntegrityError(`the globals part of backup ${manifest.id} lists ${part.rawBytes} bytes; a globals part holds at most ${MAX_GLOBALS_BYTES}`);
  const chain = await openPart(storage, manifest, part, dataKey);
  const chunks: Buffer[] = [];
  let size = 0;
  const collect = new Writable({
    write(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > part.rawBytes) return done(new IntegrityError(`${chain.where} is longer than the ${part.rawBytes} bytes the manifest lists`));
      chunks.push(chunk);
      done();
    },
  });
  try {
    await runPipeline([...chain.stages, collect], signal);
  } catch (err) {
    throw partFailure(err, chain.where);
  }
  checkPart(chain, part);
  return parseGlobals(Buffer.concat(chunks), chain.where);
}

/**
 * Attributes a restore gives a role it creates. SUPERUSER, REPLICATION and BYPASSRLS are powers over
 * the whole server: a backup never confers them (the outcome lists them for an operator to grant).
 * No password (none is in a backup): a LOGIN role logs in once an operator sets one. VALID UNTIL
 * limits a password, so it is left out too.
 */
export function roleOptions(role: GlobalRole): string {
  const flag = (on: boolean, word: string) => (on ? word : `NO${word}`);
  const limit = Number.isSafeInteger(role.rolconnlimit) && role.rolconnlimit >= -1 ? role.rolconnlimit : -1;
  return [
    'NOSUPERUSER',
    flag(role.rolinherit, 'INHERIT'),
    flag(role.rolcreaterole, 'CREATEROLE'),
    flag(role.rolcreatedb, 'CREATEDB'),
    flag(role.rolcanlogin, 'LOGIN'),
    'NOREPLICATION',
    'NOBYPASSRLS',
    `CONNECTION LIMIT ${limit}`,
  ].join(' ');
}

/** Powers of the recorded role that the created one does not get. */
function withheldOf(role: GlobalRole): string[] {
  return [role.rolsuper && 'SUPERUSER', role.rolreplication && 'REPLICATION', role.rolbypassrls && 'BYPASSRLS'].filter((w): w is string => Boolean(w));
}

/** Built-in roles that reach the server's files or programs: as much power as SUPERUSER, never granted from a backup. */
const SERVER_POWER_ROLES = new Set(['pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files']);

export interface GlobalsOutcome {
  /** Roles the backup uses that the target server lacked, created now. */
  created: string[];
  /** Memberships granted now, as "role → member". */
  granted: string[];
  /** What was not given, and why: server-wide powers, memberships of roles that existed before. */
  withheld: string[];
  /** Tablespaces the backup uses that the target server lacks. */
  missingTablespaces: string[];
}

/** What the target server lacks of the backup's globals (nothing is changed). */
export interface MissingGlobals {
  roles: string[];
  tablespaces: string[];
}

async function existingNames(client: pg.Client, sql: string, names: string[]): Promise<Set<string>> {
  const { rows } = await client.query<{ name: string }>(sql, [names]);
  return new Set(rows.map((r) => r.name));
}

const EXISTING_ROLES = 'SELECT rolname AS name FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])';
const EXISTING_TABLESPACES = 'SELECT spcname AS name FROM pg_catalog.pg_tablespace WHERE spcname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])';
const HAS_MEMBERSHIP = `SELECT 1 FROM pg_catalog.pg_auth_members a
  JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.roleid JOIN pg_catalog.pg_roles m ON m.oid OPERATOR(pg_catalog.=) a.member
  WHERE g.rolname OPERATOR(pg_catalog.=) $1 AND m.rolname OPERATOR(pg_catalog.=) $2`;

/** A role of the target server with power over the whole server (SUPERUSER, REPLICATION, BYPASSRLS). */
const SERVER_POWER_ROLE = `SELECT 1 FROM pg_catalog.pg_roles
  WHERE rolname OPERATOR(pg_catalog.=) $1 AND (rolsuper OR rolreplication OR rolbypassrls)`;

/** The roles and tablespaces of the backup that the server `conn` is on does not have. */
export async function missingGlobals(conn: ResolvedConnection, globals: Globals): Promise<MissingGlobals> {
  return withConnection(onDatabase(conn), async (client) => {
    const roles = globals.roles.map((r) => r.name);
    const haveRoles = await existingNames(client, EXISTING_ROLES, roles);
    const spaces = globals.tablespaces.map((t) => t.name);
    const haveSpaces = await existingNames(client, EXISTING_TABLESPACES, spaces);
    return { roles: roles.filter((r) => !haveRoles.has(r)), tablespaces: spaces.filter((t) => !haveSpaces.has(t)) };
  });
}

function globalsFailed(what: string, err: unknown): LifelineError {
  const e = err as { code?: string; message?: string };
  return new LifelineError('GlobalsFailed', `${what} failed: ${e.message ?? String(err)}`, {
    hint: e.code === '42501'
      ? 'the restoring role needs CREATEROLE (and ADMIN OPTION on the roles it grants), or create the roles by hand and restore without --with-globals'
      : 'create the roles by hand (the plan lists them) and restore without --with-globals',
    cause: err,
  });
}

/**
 * Creates the roles of the backup that the server lacks (CREATE ROLE with quoteIdent and fixed
 * keywords from the recorded booleans), then grants the recorded memberships whose member is one
 * of those new roles. A role that exists is left exactly as it is, memberships included; a role
 * created meanwhile by someone else counts as existing. Tablespaces are only reported: creating one
 * needs a folder on the server (see README, Restores). Idempotent: a retried step finds its roles.
 */
export async function createMissingRoles(conn: ResolvedConnection, globals: Globals): Promise<GlobalsOutcome> {
  return withConnection(onDatabase(conn), async (client) => {
    const outcome: GlobalsOutcome = { created: [], granted: [], withheld: [], missingTablespaces: [] };
    const have = await existingNames(client, EXISTING_ROLES, globals.roles.map((r) => r.name));
    for (const role of globals.roles) {
      if (have.has(role.name)) continue;
      if (role.builtin) {
        outcome.withheld.push(`role ${role.name} is built into the source server and missing here: not created`);
        continue;
      }
      try {
        await client.query(`CREATE ROLE ${quoteIdent(role.name)} WITH ${roleOptions(role)}`);
      } catch (err) {
        if ((err as { code?: string }).code === '42710') continue; // created meanwhile: exists, left alone
        throw globalsFailed(`creating role ${JSON.stringify(role.name)}`, err);
      }
      outcome.created.push(role.name);
      for (const power of withheldOf(role)) outcome.withheld.push(`${power} of role ${role.name} (server-wide: grant it by hand if it is needed)`);
    }
    const created = new Set(outcome.created);
    const version = Number((await client.query<{ n: string }>("SELECT pg_catalog.current_setting('server_version_num') AS n")).rows[0]!.n);
    for (const m of globals.memberships) {
      if (!created.has(m.member)) {
        // Only if it would change a role that existed before this restore.
        if (!have.has(m.member)) continue;
        if ((await client.query(HAS_MEMBERSHIP, [m.role, m.member])).rowCount) continue;
        outcome.withheld.push(`membership of ${m.member} in ${m.role} (${m.member} existed before: it is not altered)`);
        continue;
      }
      // A role of the same name may be SUPERUSER here though it was not on the source server:
      // membership would let the new role SET ROLE to it.
      if (SERVER_POWER_ROLES.has(m.role) || (await client.query(SERVER_POWER_ROLE, [m.role])).rowCount) {
        outcome.withheld.push(`membership of ${m.member} in ${m.role} (server-wide: grant it by hand if it is needed)`);
        continue;
      }
      if ((await client.query(HAS_MEMBERSHIP, [m.role, m.member])).rowCount) continue;
      const options = [m.admin && 'ADMIN TRUE', version >= 160000 && m.inherit !== undefined && `INHERIT ${m.inherit ? 'TRUE' : 'FALSE'}`, version >= 160000 && m.set !== undefined && `SET ${m.set ? 'TRUE' : 'FALSE'}`].filter(Boolean);
      const withClause = options.length ? (version >= 160000 ? ` WITH ${options.join(', ')}` : m.admin ? ' WITH ADMIN OPTION' : '') : '';
      try {
        await client.query(`GRANT ${quoteIdent(m.role)} TO ${quoteIdent(m.member)}${withClause}`);
      } catch (err) {
        throw globalsFailed(`granting role ${JSON.stringify(m.role)} to ${JSON.stringify(m.member)}`, err);
      }
      outcome.granted.push(`${m.role} → ${m.member}`);
    }
    const spaces = await existingNames(client, EXISTING_TABLESPACES, globals.tablespaces.map((t) => t.name));
    outcome.missingTablespaces = globals.tablespaces.map((t) => t.name).filter((t) => !spaces.has(t));
    return outcome;
  });
}

/**
 * A restore that failed on a role or tablespace the target server lacks, with what to do about it:
 * --with-globals creates roles; a tablespace needs a folder on the server, so an operator creates it
 * (a restore does not silently put its tables elsewhere).
 */
export function missingGlobalHint(err: unknown, withGlobals: boolean): unknown {
  if (!(err instanceof LifelineError)) return err;
  // PostgreSQL quotes the name without doubling the quotes in it.
  const role = /role "(.+?)" does not exist/.exec(err.message);
  const tablespace = /tablespace "(.+?)" does not exist/.exec(err.message);
  const hint = tablespace
    ? `create tablespace ${tablespace[1]} on the target server first (CREATE TABLESPACE … LOCATION '<an empty folder of the server>'), then restore again`
    : role && !withGlobals
      ? 'restore with --with-globals: it creates the roles the backup uses that the target server lacks (the plan lists them), or create them by hand'
      : role
        ? `the backup's globals do not include role ${role[1]}: create it by hand, then restore again`
        : undefined;
  if (!hint) return err;
  return new LifelineError(err.code, err.message, { hint, retryable: false, cause: err, details: err.details });
}
