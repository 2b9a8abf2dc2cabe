/**
 * Issue 11, item 1: `lifeline decrypt` turns a parts-format backup back into one standard pg_dump
 * archive that plain `pg_restore` restores completely, without Temporal: every row (a table of
 * several parts, partitions, inheritance, odd and hostile names), sequences, large objects and
 * materialized views. The backup is copied with its manifest into an empty folder, as an operator
 * holds it after losing the server. A damaged part leaves no output; --parts writes each part.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { before, describe, it } from 'node:test';
import { catalogBackup } from '../../src/backup/catalog-backup';
import { dumpToRepository } from '../../src/backup/dump';
import { localStorageFor } from '../../src/backup/repository';
import type { Manifest } from '../../src/catalog/manifest';
import { backupId, manifestKey } from '../../src/catalog/naming';
import type { DatabaseConfig } from '../../src/config/config';
import { keyringFor } from '../../src/crypto/keys';
import { ByteReader, OFFSET_NO_DATA, OFFSET_POS_SET, readHeader, readToc } from '../../src/parts/custom-archive';
import { ARCHIVE_PART } from '../../src/parts/part-names';
import { isParts, storedObjects } from '../../src/parts/parts-of';
import { pgTool } from '../../src/postgres/binaries';
import { contentOf } from '../harness/compare';
import { nextSecond, testConfig, type TestSetup } from '../harness/fixtures';
import { createHostileDatabase, type HostileDatabase } from '../harness/hostile-names';
import { createPartsDatabase, everythingIn, PART_BYTES, PARTS_ENV, PARTS_TABLES, type PartsDatabase } from '../harness/parts-fixture';
import { lifelineDecrypt as decrypt } from '../harness/recovery';
import { testServers, type TestServers } from '../harness/servers';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

interface Copy {
  folder: string;
  /** The archive part: the file an operator names. */
  file: string;
  manifest: Manifest;
}

/**
 * Backs the database up in the parts format (the real dump, two jobs, 1 MiB parts), catalogues it
 * (sealed manifest), and copies every object and the manifest into a new flat folder.
 */
async function partsBackupCopy(setup: TestSetup, db: DatabaseConfig): Promise<Copy> {
  const keys = keyringFor(setup.config);
  const record = await dumpToRepository(setup.config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
  assert.ok(isParts(record), 'a parts-format backup');
  // Verification is H2's (src/backup/verify.ts); this test checks what decrypt gives back instead.
  const verification = { verifiedAt: new Date().toISOString(), method: 'test', storedSha256: record.sha256, rawSha256: record.rawSha256, tocEntries: 0, tableDataEntries: 0, durationMs: 0 };
  const manifest = await catalogBackup(db, record, verification, 'test', keys);
  const folder = mkdtempSync(path.join(tmpdir(), 'lifeline-decrypt-parts-'));
  const storage = localStorageFor(db);
  for (const object of storedObjects(manifest)) copyFileSync(storage.describe(object.key), path.join(folder, path.basename(object.key)));
  copyFileSync(storage.describe(manifestKey(db.name, manifest.id)), path.join(folder, `${manifest.id}.manifest.json`));
  return { folder, file: path.join(folder, path.basename(manifest.object.key)), manifest };
}

async function freshDatabase(servers: TestServers, name: string): Promise<string> {
  await servers.cluster.sql(`DROP DATABASE IF EXISTS ${name}`);
  await servers.cluster.sql(`CREATE DATABASE ${name}`);
  return servers.cluster.adminUrl(name);
}

/** `lifeline decrypt FILE | pg_restore …`: the archive through a pipe, as the help text shows. */
function decryptIntoPgRestore(file: string, keyFile: string, url: string): Promise<{ decrypt: number; restore: number; stderr: string }> {
  const env = { ...process.env, BACKUP_ENCRYPTION_KEY: keyFile, TEMPORAL_ADDRESS: '127.0.0.1:1' };
  const lifeline = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'decrypt', file], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const restore = spawn(pgTool('pg_restore'), ['--single-transaction', '--exit-on-error', `--dbname=${url}`], { stdio: ['pipe', 'ignore', 'pipe'] });
  lifeline.stdout.pipe(restore.stdin);
  let stderr = '';
  lifeline.stderr.on('data', (d) => (stderr += d));
  restore.stderr.on('data', (d) => (stderr += d));
  const exit = (child: ReturnType<typeof spawn>) => new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  return Promise.all([exit(lifeline), exit(restore)]).then(([d, r]) => ({ decrypt: d, restore: r, stderr }));
}

describe('lifeline decrypt of a parts-format backup: one archive plain pg_restore restores', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let source: PartsDatabase;
  let hostile: HostileDatabase;
  let canary: string;
  let keyFile: string;
  let atBackup: Awaited<ReturnType<typeof everythingIn>>;
  let hostileAtBackup: Awaited<ReturnType<typeof contentOf>>;
  let copy: Copy;
  let hostileCopy: Copy;

  before(async () => {
    servers = await testServers();
    source = await createPartsDatabase(servers, 'dp_src');
    canary = path.join(mkdtempSync(path.join(tmpdir(), 'dp-canary-')), 'x');
    hostile = await createHostileDatabase(servers, 'dph', canary);
    setup = await testConfig(servers, 'decrypt-parts', [
      { name: 'dp_src', url: source.url },
      { name: 'dp_hostile', url: hostile.url },
    ], { env: { ...PARTS_ENV } });
    keyFile = setup.env.BACKUP_ENCRYPTION_KEY!;
    atBackup = await everythingIn(source.adminUrl);
    hostileAtBackup = await contentOf(hostile.url);
    copy = await partsBackupCopy(setup, setup.config.databases[0]!);
    await nextSecond();
    hostileCopy = await partsBackupCopy(setup, setup.config.databases[1]!);
  });

  it('the backup is made of parts, one table of several', () => {
    const parts = copy.manifest.parts!;
    const big = copy.manifest.tables.find((t) => t.schema === PARTS_TABLES.big[0] && t.name === PARTS_TABLES.big[1])!;
    assert.ok(parts.filter((p) => p.tableOid === big.oid).length >= 3, `the big table is in several parts of ${PART_BYTES} bytes`);
    assert.ok(copy.manifest.tables.some((t) => t.parentOid !== undefined), 'partitions');
    assert.ok(copy.manifest.largeObjects >= 3);
  });

  it('lifeline list and verify say how many parts a backup is stored as', async () => {
    const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root, env: { ...process.env, ...setup.env, LOG_LEVEL: 'warn' } });
    const n = copy.manifest.parts!.length;
    const tableParts = copy.manifest.parts!.filter((p) => p.kind === 'table-data').length;
    const list = (await cli(['list', '--db', 'dp_src'])).stdout;
    assert.match(list, /\bPARTS\b/);
    assert.match(list, new RegExp(`${copy.manifest.id} .* ${copy.manifest.tables.length} +${n} +local:`));
    const verify = (await cli(['verify', copy.manifest.id])).stdout;
    assert.match(verify, new RegExp(`^OK +${copy.manifest.id} +\\(${n} parts \\(${tableParts} of table rows\\), \\d+ archive entries, `));
    const json = JSON.parse((await cli(['verify', copy.manifest.id, '--json'])).stdout) as Array<{ parts: number; tableParts: number }>;
    assert.deepEqual([json[0]!.parts, json[0]!.tableParts], [n, tableParts]);
  });

  it('-o gives one archive that pg_restore (one job, no Temporal) restores completely: rows, sequences, large objects, matviews', async () => {
    const out = path.join(copy.folder, 'recovered.dump');
    const { stderr } = await decrypt([copy.file, '-o', out], keyFile);
    assert.match(String(stderr), /bytes of pg_dump archive \(with data offsets.*\): the archive part and \d+ part\(s\) of \d+ table\(s\), every part's SHA-256 matches the manifest/);
    assert.match(String(stderr), /--parts DIR` writes them as globals\.json/);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const listed = (await run(pgTool('pg_restore'), ['-l', out], { maxBuffer: 64 << 20 })).stdout;
    for (const t of copy.manifest.tables.filter((x) => x.kind === 'table')) {
      assert.ok(listed.includes(`; 0 ${t.oid} TABLE DATA `), `a TABLE DATA entry for ${t.schema}.${t.name}`);
    }
    const url = await freshDatabase(servers, 'dp_recovered');
    await run(pgTool('pg_restore'), ['--exit-on-error', `--dbname=${url}`, out], { maxBuffer: 64 << 20 });
    assert.deepEqual(await everythingIn(url), atBackup);
    // Written to a file, it carries its data offsets as pg_dump -f does: pg_restore -j finds each block.
    const r = new ByteReader(createReadStream(out), out);
    const toc = await readToc(r, await readHeader(r));
    assert.ok(toc.filter((e) => e.dataState !== OFFSET_NO_DATA).every((e) => e.dataState === OFFSET_POS_SET));
    const jobs = await freshDatabase(servers, 'dp_recovered_j2');
    await run(pgTool('pg_restore'), ['-j', '2', '--exit-on-error', `--dbname=${jobs}`, out], { maxBuffer: 64 << 20 });
    assert.deepEqual(await everythingIn(jobs), atBackup);
  });

  it('piped into pg_restore --single-transaction: a database of hostile names comes back row for row, no name runs anything', async () => {
    const url = await freshDatabase(servers, 'dp_hostile_copy');
    const result = await decryptIntoPgRestore(hostileCopy.file, keyFile, url);
    assert.deepEqual([result.decrypt, result.restore], [0, 0], result.stderr);
    assert.deepEqual(await contentOf(url), hostileAtBackup);
    assert.equal(existsSync(canary), false);
  });

  it('a damaged or missing part: exit 1 naming the part, and no output file, not even a temporary one', async () => {
    const bad = mkdtempSync(path.join(tmpdir(), 'lifeline-decrypt-parts-bad-'));
    for (const f of readdirSync(copy.folder)) if (f.endsWith('.enc') || f.endsWith('.json')) copyFileSync(path.join(copy.folder, f), path.join(bad, f));
    const big = copy.manifest.tables.find((t) => t.name === PARTS_TABLES.big[1])!;
    const victim = copy.manifest.parts!.filter((p) => p.tableOid === big.oid)[1]!;
    const victimFile = path.join(bad, readdirSync(bad).find((f) => f.includes(`.part.${victim.name}.`))!);
    const bytes = readFileSync(victimFile);
    const file = path.join(bad, path.basename(copy.file));
    const named = `part ${victim.name} of backup ${copy.manifest.id}`;
    const rounds: Array<[() => void, RegExp]> = [
      [() => writeFileSync(victimFile, Buffer.concat([bytes.subarray(0, 2000), Buffer.from([bytes[2000]! ^ 1]), bytes.subarray(2001)])), new RegExp(`${named}.*(authentication|damaged|differs)`, 's')],
      [() => rmSync(victimFile), new RegExp(`${named} .* is missing`)],
    ];
    for (const [damage, expected] of rounds) {
      damage();
      const out = path.join(bad, 'restored.dump');
      await assert.rejects(decrypt([file, '-o', out], keyFile), (err: { code?: number; stderr?: Buffer }) => {
        assert.equal(err.code, 1);
        assert.match(String(err.stderr), expected);
        return true;
      });
      assert.equal(existsSync(out), false);
      await assert.rejects(decrypt([file, '--parts', path.join(bad, 'parts')], keyFile), (err: { code?: number; stderr?: Buffer }) => {
        assert.equal(err.code, 1);
        assert.match(String(err.stderr), expected);
        return true;
      });
      assert.deepEqual(readdirSync(bad).filter((f) => f.includes('restored') || f.includes('parts')), []);
    }
  });

  it('--parts DIR writes every part as its own file: archive.dump, COPY text, globals.json, index.json', async () => {
    const dir = path.join(copy.folder, 'parts');
    await decrypt([copy.file, '--parts', dir], keyFile);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as { parts: Array<{ file: string; part: string; sha256: string; load?: string }> };
    assert.deepEqual(index.parts.map((p) => p.part).sort(), copy.manifest.parts!.map((p) => p.name).sort());
    for (const entry of index.parts) {
      const part = copy.manifest.parts!.find((p) => p.name === entry.part)!;
      assert.equal(createHash('sha256').update(readFileSync(path.join(dir, entry.file))).digest('hex'), part.rawSha256, entry.file);
      if (part.kind === 'table-data') assert.match(entry.load!, /^COPY ".*\) FROM STDIN;$/s);
    }
    // By hand: archive.dump with pg_restore, then each file with its COPY statement, gives every row back.
    const url = await freshDatabase(servers, 'dp_by_hand');
    await run(pgTool('pg_restore'), ['--exit-on-error', `--dbname=${url}`, path.join(dir, index.parts.find((p) => p.part === ARCHIVE_PART)!.file)]);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`SET session_replication_role = replica`); // rows in file order, foreign keys already in place
      for (const entry of index.parts.filter((p) => p.load)) {
        await pipeline(createReadStream(path.join(dir, entry.file)), client.query(copyFrom(entry.load!.replace(/;$/, ''))));
      }
    } finally {
      await client.end();
    }
    assert.deepEqual(await contentOf(url), atBackup.tables);
    assert.ok(JSON.parse(readFileSync(path.join(dir, 'globals.json'), 'utf8')));
    await assert.rejects(decrypt([copy.file, '--parts', dir], keyFile), /already exists; refusing to overwrite it/);
  });
});
