import type pg from 'pg';
import { z } from 'zod';
import { IntegrityError } from '../errors';

/**
 * The globals part: what a restore onto another server needs from outside the database (roles and
 * tablespaces are cluster-wide, so pg_dump leaves them out), limited to what this database uses,
 * as `pg_dumpall --globals-only` would give filtered. No password hashes: a restored role logs in
 * once an operator sets its password. Read back with GlobalsSchema (zod-checked, it is data from a
 * backup); the schema is the contract with the restore side: add optional fields, never change one.
 */
export const GLOBALS_VERSION = 1;

const RoleSchema = z.object({
  name: z.string().min(1),
  /** A role every server has (pg_*, the bootstrap superuser, OID below 16384): never created, only granted. */
  builtin: z.boolean(),
  rolsuper: z.boolean(),
  rolinherit: z.boolean(),
  rolcreaterole: z.boolean(),
  rolcreatedb: z.boolean(),
  rolcanlogin: z.boolean(),
  rolreplication: z.boolean(),
  rolbypassrls: z.boolean(),
  rolconnlimit: z.number().int(),
  /** ISO 8601 timestamp, 'infinity', or null (no limit). */
  rolvaliduntil: z.string().nullable(),
});

const MembershipSchema = z.object({
  /** The role granted … */
  role: z.string().min(1),
  /** … to this member. */
  member: z.string().min(1),
  admin: z.boolean(),
  /** PostgreSQL 16+: whether the member inherits the role's privileges, and may SET ROLE to it. */
  inherit: z.boolean().optional(),
  set: z.boolean().optional(),
});

const TablespaceSchema = z.object({
  name: z.string().min(1),
  owner: z.string().min(1),
  /** Its folder on the server the backup was taken from ('' for a tablespace in the data folder). */
  location: z.string(),
});

export const GlobalsSchema = z.object({
  version: z.literal(GLOBALS_VERSION),
  /** The database the backup is of, and its owner. */
  database: z.object({ name: z.string(), owner: z.string().min(1) }),
  /** Every role the database uses (owners, grantees, its owner) and every role those are members of, transitively. */
  roles: z.array(RoleSchema),
  /** Memberships among those roles. */
  memberships: z.array(MembershipSchema),
  /** Tablespaces other than pg_default and pg_global that the database or its relations use. */
  tablespaces: z.array(TablespaceSchema),
});
export type Globals = z.infer<typeof GlobalsSchema>;
export type GlobalRole = z.infer<typeof RoleSchema>;
export type GlobalMembership = z.infer<typeof MembershipSchema>;
export type GlobalTablespace = z.infer<typeof TablespaceSchema>;

/** Below it: objects every cluster creates (FirstNormalObjectId). */
const FIRST_NORMAL_OID = 16384;

/**
 * Roles the database uses: its owner, and every role pg_shdepend records for objects of this
 * database (owners, grantees, policy roles, default privileges) or for the database itself
 * (GRANT … ON DATABASE), its per-database settings' roles, and owners of the tablespaces it uses;
 * then, transitively, every role those are members of.
 */
const ROLES_SQL = `
  WITH RECURSIVE this_db AS (
    SELECT oid, datdba FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
  ), used_tablespaces AS (
    SELECT t.oid, t.spcowner FROM pg_catalog.pg_tablespace t
    WHERE t.oid OPERATOR(pg_catalog.>=) $1::pg_catalog.oid
      AND (t.oid OPERATOR(pg_catalog.=) (SELECT dattablespace FROM pg_catalog.pg_database WHERE oid OPERATOR(pg_catalog.=) (SELECT oid FROM this_db))
           OR t.oid IN (SELECT reltablespace FROM pg_catalog.pg_class))
  ), direct AS (
    SELECT datdba AS oid FROM this_db
    UNION SELECT d.refobjid FROM pg_catalog.pg_shdepend d, this_db
      WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
        AND (d.dbid OPERATOR(pg_catalog.=) this_db.oid
             OR (d.dbid OPERATOR(pg_catalog.=) 0 AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_database'::pg_catalog.regclass AND d.objid OPERATOR(pg_catalog.=) this_db.oid))
    UNION SELECT s.setrole FROM pg_catalog.pg_db_role_setting s, this_db
      WHERE s.setdatabase OPERATOR(pg_catalog.=) this_db.oid AND s.setrole OPERATOR(pg_catalog.<>) 0
    UNION SELECT spcowner FROM used_tablespaces
  ), used AS (
    SELECT oid FROM direct
    UNION SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN used u ON m.member OPERATOR(pg_catalog.=) u.oid
  )
  SELECT r.oid::pg_catalog.int8 AS oid, r.rolname AS name, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
    r.rolreplication, r.rolbypassrls, r.rolconnlimit, pg_catalog.to_json(r.rolvaliduntil) OPERATOR(pg_catalog.#>>) '{}' AS rolvaliduntil
  FROM pg_catalog.pg_roles r JOIN used u ON r.oid OPERATOR(pg_catalog.=) u.oid
  ORDER BY r.rolname`;

const membershipsSql = (serverVersionNum: number) => `
  SELECT g.rolname AS role, m.rolname AS member, a.admin_option AS admin
    ${serverVersionNum >= 160000 ? ', a.inherit_option AS inherit, a.set_option AS set' : ''}
  FROM pg_catalog.pg_auth_members a
  JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.roleid
  JOIN pg_catalog.pg_roles m ON m.oid OPERATOR(pg_catalog.=) a.member
  WHERE a.roleid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) AND a.member OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])
  ORDER BY 1, 2`;

const TABLESPACES_SQL = `
  SELECT t.spcname AS name, pg_catalog.pg_get_userbyid(t.spcowner) AS owner, pg_catalog.pg_tablespace_location(t.oid) AS location
  FROM pg_catalog.pg_tablespace t
  WHERE t.oid OPERATOR(pg_catalog.>=) $1::pg_catalog.oid
    AND (t.oid OPERATOR(pg_catalog.=) (SELECT dattablespace FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
         OR t.oid IN (SELECT reltablespace FROM pg_catalog.pg_class))
  ORDER BY 1`;

const DATABASE_SQL = `
  SELECT pg_catalog.current_database() AS name, pg_catalog.pg_get_userbyid(datdba) AS owner
  FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()`;

/** Reads the globals the database uses (in the session's snapshot: the dump's). Fixed SQL, bind parameters only. */
export async function captureGlobals(client: pg.Client): Promise<Globals> {
  const version = Number((await client.query<{ n: string }>("SELECT pg_catalog.current_setting('server_version_num') AS n")).rows[0]!.n);
  const database = (await client.query<{ name: string; owner: string }>(DATABASE_SQL)).rows[0]!;
  const roleRows = (await client.query<Omit<GlobalRole, 'builtin'> & { oid: string }>(ROLES_SQL, [FIRST_NORMAL_OID])).rows;
  const oids = roleRows.map((r) => r.oid);
  const memberships = (await client.query<GlobalMembership>(membershipsSql(version), [oids])).rows;
  const tablespaces = (await client.query<GlobalTablespace>(TABLESPACES_SQL, [FIRST_NORMAL_OID])).rows;
  return GlobalsSchema.parse({
    version: GLOBALS_VERSION,
    database,
    roles: roleRows.map(({ oid, ...role }) => ({ ...role, builtin: Number(oid) < FIRST_NORMAL_OID })),
    memberships: memberships.map((m) => ({ role: m.role, member: m.member, admin: m.admin, ...(m.inherit !== undefined && { inherit: m.inherit, set: m.set }) })),
    tablespaces,
  });
}

/** Parses a globals part's plain bytes; a part that is not valid globals fails naming what is wrong. */
export function parseGlobals(bytes: Buffer, where: string): Globals {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new IntegrityError(`${where} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = GlobalsSchema.safeParse(json);
  if (!parsed.success) throw new IntegrityError(`${where} is not a globals part: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}
