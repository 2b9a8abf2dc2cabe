import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { pgTool } from '../postgres/binaries';
import { freePort, isListening, waitFor } from './net';

const run = promisify(execFile);

/** initdb refuses to run as root: as root, the cluster belongs to the `postgres` system user. */
const OS_USER = process.getuid?.() === 0 ? 'postgres' : userInfo().username;

async function asClusterOwner(command: string, args: string[]): Promise<void> {
  if (process.getuid?.() === 0) await run('runuser', ['-u', OS_USER, '--', command, ...args]);
  else await run(command, args);
}

async function ownerIds(): Promise<{ uid: number; gid: number }> {
  const { stdout: uid } = await run('id', ['-u', OS_USER]);
  const { stdout: gid } = await run('id', ['-g', OS_USER]);
  return { uid: Number(uid), gid: Number(gid) };
}

const HBA = `# Lifeline private cluster: the superuser is trusted locally; every other role needs its password.
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
`;

/**
 * A private PostgreSQL cluster (initdb in a folder of ours, its own port, loopback only), for the
 * demo database and for tests. `start()` initialises the folder on first use and reuses it after.
 */
export class PrivateCluster {
  port = 0;

  constructor(
    readonly dir: string,
    private readonly fixedPort?: number,
  ) {}

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  /** Superuser URL (trusted on loopback, no password). */
  adminUrl(database = 'postgres'): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<this> {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    if (process.getuid?.() === 0) {
      const { uid, gid } = await ownerIds();
      chownSync(this.dir, uid, gid);
    }
    if (!existsSync(path.join(this.dataDir, 'PG_VERSION'))) {
      await asClusterOwner(pgTool('initdb'), ['-D', this.dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync']);
      writeFileSync(path.join(this.dataDir, 'pg_hba.conf'), HBA);
      if (process.getuid?.() === 0) {
        const { uid, gid } = await ownerIds();
        chownSync(path.join(this.dataDir, 'pg_hba.conf'), uid, gid);
      }
    }
    const portFile = path.join(this.dir, 'port');
    this.port = this.fixedPort ?? (existsSync(portFile) ? Number(readFileSync(portFile, 'utf8')) : await freePort());
    if (!(await isListening('127.0.0.1', this.port))) {
      // The port may have been taken since we last used it.
      if (!this.fixedPort && existsSync(portFile)) this.port = await freePort();
      await asClusterOwner(pgTool('pg_ctl'), [
        '-D', this.dataDir, '-l', path.join(this.dir, 'postgres.log'), '-w', '-t', '60',
        '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`,
        'start',
      ]);
    }
    writeFileSync(portFile, String(this.port));
    await waitFor('private PostgreSQL', () => isListening('127.0.0.1', this.port), 30_000);
    return this;
  }

  async stop(): Promise<void> {
    if (!existsSync(path.join(this.dataDir, 'postmaster.pid'))) return;
    await asClusterOwner(pgTool('pg_ctl'), ['-D', this.dataDir, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
  }

  async sql<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, database = 'postgres'): Promise<T[]> {
    const client = new pg.Client({ connectionString: this.adminUrl(database) });
    await client.connect();
    try {
      return (await client.query<T>(text)).rows;
    } finally {
      await client.end();
    }
  }

  /** A role with a password that owns a new database; returns its URL (with the password). */
  async createDatabase(name: string, owner: string, password: string): Promise<string> {
    const role = (await this.sql(`SELECT 1 FROM pg_roles WHERE rolname = '${owner}'`)).length;
    if (!role) await this.sql(`CREATE ROLE "${owner}" LOGIN PASSWORD '${password.replace(/'/g, "''")}'`);
    const exists = (await this.sql(`SELECT 1 FROM pg_database WHERE datname = '${name}'`)).length;
    if (!exists) await this.sql(`CREATE DATABASE "${name}" OWNER "${owner}"`);
    return `postgresql://${owner}:${encodeURIComponent(password)}@127.0.0.1:${this.port}/${name}`;
  }
}
