/**
 * Issue 11: a part that is missing, swapped with another part, taken from another backup, truncated
 * or altered fails `lifeline verify` naming the part; an edited parts list fails naming the
 * manifest; and a restore of any of them refuses before it changes the target. An object planted
 * under the backup's prefix that the manifest does not list is never read.
 * Each case damages the repository copy of one verified backup, checks, and puts the bytes back.
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual, promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { catalogFor, localStorageFor } from '../../src/backup/repository';
import type { Manifest } from '../../src/catalog/manifest';
import { manifestKey } from '../../src/catalog/naming';
import { HEADER_BYTES, MAGIC, TAG_BYTES } from '../../src/crypto/format';
import type { PartRecord } from '../../src/parts/part-record';
import { partObjectKeyOf, partsOfTable } from '../../src/parts/parts-of';
import { quoteIdent } from '../../src/postgres/connection';
import { BACKUP_WORKFLOW_TYPE, RESTORE_WORKFLOW_TYPE, type BackupWorkflowResult, type RestoreWorkflowInput, type RestoreWorkflowResult } from '../../workflows/definitions';
import { contentOf } from '../harness/compare';
import { nextSecond, query, testConfig, type TestSetup } from '../harness/fixtures';
import { createPartsDatabase, PARTS_ENV, PARTS_TABLES, scratchDatabases, type PartsDatabase } from '../harness/parts-fixture';
import { testServers, type TestServers } from '../harness/servers';
import { runWorker, testClient } from '../harness/worker';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

/** The innermost message of a failure (workflow → activity → application failure). */
function rootMessage(err: unknown): string {
  let e = err as Error | undefined;
  while (e?.cause instanceof Error) e = e.cause;
  return String(e?.message ?? err);
}

/** How many encryption chunks a stored part has, and where its last one starts (format.ts: header, then chunks of chunkSize + tag, the last shorter). */
function chunksOf(file: string): { chunks: number; lastChunkAt: number } {
  const bytes = readFileSync(file);
  const chunkSize = bytes.readUInt32BE(MAGIC.length + 2);
  const body = bytes.length - HEADER_BYTES;
  for (let n = 1; n * TAG_BYTES <= body; n++) {
    if (Math.floor((body - n * TAG_BYTES) / chunkSize) + 1 === n) return { chunks: n, lastChunkAt: HEADER_BYTES + (n - 1) * (chunkSize + TAG_BYTES) };
  }
  throw new Error(`${file} is not a chunked stream of ${chunkSize}-byte chunks`);
}

describe('parts format: tampered parts fail verification naming the part, and restores refuse them', () => {
  let servers: TestServers;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let source: PartsDatabase;
  let first: Manifest;
  let second: Manifest;
  let bigParts: PartRecord[];
  let otherBigParts: PartRecord[];
  let backups: string[];

  const storage = () => localStorageFor(setup.config.databases[0]!);
  const fileOf = (m: Manifest, part: Pick<PartRecord, 'name'>) => storage().describe(partObjectKeyOf(m, part));
  const manifestFile = (m: Manifest) => storage().describe(manifestKey(m.database, m.id));

  const backup = async () => {
    const result = (await client.workflow.execute(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `pt-backup-${Date.now()}`,
      args: [{ database: 'pt_src' }],
    })) as BackupWorkflowResult;
    return catalogFor(setup.config.databases[0]!).get(result.backupId);
  };
  const restore = async (input: Partial<RestoreWorkflowInput>) =>
    (await client.workflow.execute(RESTORE_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId: `pt-restore-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`,
      args: [{ database: 'pt_src', requestedBy: 'test', force: true, backup: first.id, ...input }],
    })) as RestoreWorkflowResult;

  /** `lifeline verify ID`, as an operator runs it: exit code and what it printed. */
  const verifyCli = async (id: string): Promise<{ code: number; out: string }> => {
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'verify', id], {
        cwd: root,
        env: { ...process.env, ...setup.env, LOG_LEVEL: 'warn' },
      });
      return { code: 0, out: stdout };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  };

  /**
   * Damages the backup with `damage`, then: `lifeline verify` fails naming `named`, a full restore and
   * (for a table part) a --tables restore of the big table refuse with the same, and the target, the
   * catalog and the server's databases are as they were. Every check runs, and all that failed are
   * reported together. The files the damage touched are put back.
   */
  const refusedWhenDamaged = async (touched: string[], damage: () => void, named: RegExp, tablesToo: boolean) => {
    const saved = new Map(touched.map((f) => [f, existsSync(f) ? readFileSync(f) : undefined]));
    const before = await contentOf(source.url);
    const problems: string[] = [];
    damage();
    try {
      const verified = await verifyCli(first.id);
      if (verified.code !== 1 || !new RegExp(`FAIL +${first.id} `).test(verified.out) || !named.test(verified.out)) {
        problems.push(`lifeline verify (exit ${verified.code}) does not fail naming ${named}: ${verified.out.trim()}`);
      }
      const modes: Array<Partial<RestoreWorkflowInput>> = [{}, ...(tablesToo ? [{ mode: 'tables' as const, tables: [`${PARTS_TABLES.big[0]}.${PARTS_TABLES.big[1]}`] }] : [])];
      for (const mode of modes) {
        const what = `the ${mode.mode ?? 'full'} restore`;
        const outcome: RestoreWorkflowResult | Error = await restore(mode).then((r) => r, (err: unknown) => (err instanceof Error ? err : new Error(String(err))));
        if (!(outcome instanceof Error)) problems.push(`${what} went ahead: ${outcome.outcome}`);
        else if (!named.test(rootMessage(outcome))) problems.push(`${what} fails without naming ${named}: ${rootMessage(outcome)}`);
        if (!isDeepStrictEqual(await contentOf(source.url), before)) problems.push(`${what} changed the target`);
      }
      const ids = (await catalogFor(setup.config.databases[0]!).list('pt_src')).map((m) => m.id);
      if (!isDeepStrictEqual(ids, backups)) problems.push(`the catalog holds ${ids.join(', ')}: a pre-restore snapshot was taken`);
      const scratch = await scratchDatabases(servers, 'pt_src');
      if (scratch.length) problems.push(`scratch databases were made: ${scratch.join(', ')}`);
    } finally {
      for (const [f, bytes] of saved) {
        rmSync(f, { force: true });
        if (bytes) writeFileSync(f, bytes);
      }
    }
    assert.deepEqual(problems, []);
  };

  before(async () => {
    servers = await testServers();
    source = await createPartsDatabase(servers, 'pt_src');
    setup = await testConfig(servers, 'parts-tamper', [{ name: 'pt_src', url: source.url, production: false, allowForceRestore: true }], { env: { ...PARTS_ENV } });
    client = await testClient(servers, setup.config);
    stopWorker = await runWorker(setup.config);
    first = await backup();
    await nextSecond();
    second = await backup();
    backups = [first.id, second.id];
    const big = first.tables.find((t) => t.schema === PARTS_TABLES.big[0] && t.name === PARTS_TABLES.big[1])!;
    bigParts = partsOfTable(first, big.oid!);
    otherBigParts = partsOfTable(second, big.oid!);
    assert.ok(bigParts.length >= 5, `the big table is in ${bigParts.length} parts`);
  });

  after(async () => {
    await stopWorker?.();
    await client?.connection.close();
  });

  it('the backup is sound to begin with', async () => {
    const verified = await verifyCli(first.id);
    assert.equal(verified.code, 0, verified.out);
    assert.match(verified.out, new RegExp(`OK +${first.id}`));
  });

  it('(a) a table-data part deleted', async () => {
    const part = bigParts[2]!;
    await refusedWhenDamaged([fileOf(first, part)], () => rmSync(fileOf(first, part)), new RegExp(`${part.name}.*missing|missing.*${part.name}`), true);
  });

  it('(b) two parts of one table swapped', async () => {
    const [one, two] = [bigParts[1]!, bigParts[2]!];
    const [a, b] = [fileOf(first, one), fileOf(first, two)];
    await refusedWhenDamaged(
      [a, b],
      () => {
        renameSync(a, `${a}.swap`);
        renameSync(b, a);
        renameSync(`${a}.swap`, b);
      },
      new RegExp(`${one.name}|${two.name}`),
      true,
    );
  });

  it('(c) a part of another backup of the same database copied over one of this backup\'s', async () => {
    const [mine, theirs] = [bigParts[1]!, otherBigParts[1]!];
    assert.equal(theirs.name, mine.name, 'both backups split the table alike');
    assert.notEqual(theirs.sha256, mine.sha256);
    await refusedWhenDamaged([fileOf(first, mine)], () => copyFileSync(fileOf(second, theirs), fileOf(first, mine)), new RegExp(mine.name), true);
  });

  it('(d) a part truncated by one chunk: the archive (several chunks) and a table part', async () => {
    const archive = first.parts!.find((p) => p.kind === 'archive')!;
    const archiveFile = fileOf(first, archive);
    const { chunks, lastChunkAt } = chunksOf(archiveFile);
    assert.ok(chunks >= 3, `the archive part has ${chunks} chunks (its 3 MiB large object does not compress)`);
    await refusedWhenDamaged([archiveFile], () => truncateSync(archiveFile, lastChunkAt), /archive|\.dump\.zst\.enc/, false);

    const part = bigParts[3]!;
    const file = fileOf(first, part);
    await refusedWhenDamaged([file], () => truncateSync(file, chunksOf(file).lastChunkAt), new RegExp(part.name), true);
  });

  it('(d) a part truncated by one byte', async () => {
    const part = bigParts.at(-1)!;
    const file = fileOf(first, part);
    await refusedWhenDamaged([file], () => truncateSync(file, statSync(file).size - 1), new RegExp(part.name), true);
  });

  it('(e) one byte altered in the middle of a part', async () => {
    const part = bigParts[4]!;
    const file = fileOf(first, part);
    await refusedWhenDamaged(
      [file],
      () => {
        const bytes = readFileSync(file);
        const middle = Math.floor(bytes.length / 2);
        bytes[middle] = bytes[middle]! ^ 0x01;
        writeFileSync(file, bytes);
      },
      new RegExp(part.name),
      true,
    );
  });

  const manifestEdits: Array<[string, (parts: PartRecord[]) => void]> = [
    ['a part\'s rows', (parts) => void (parts.find((p) => p.name === bigParts[0]!.name)!.rows! += 1)],
    ['a part\'s SHA-256 (another part\'s)', (parts) => void (parts.find((p) => p.name === bigParts[0]!.name)!.sha256 = bigParts[1]!.sha256)],
    ['a part left out', (parts) => void parts.splice(parts.findIndex((p) => p.name === bigParts.at(-1)!.name), 1)],
  ];
  for (const [what, edit] of manifestEdits) {
    it(`(f) the manifest's parts list edited: ${what}`, async () => {
      const file = manifestFile(first);
      await refusedWhenDamaged(
        [file],
        () => {
          const json = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
          edit(json.parts!);
          writeFileSync(file, JSON.stringify(json, null, 2));
        },
        new RegExp(`manifest .*${first.id}\\.manifest\\.json`),
        false,
      );
    });
  }

  it('an object planted under the backup\'s prefix, not in its manifest, is never read', async () => {
    const planted = path.join(path.dirname(manifestFile(first)), `${first.id}.part.t1-0000.zst.enc`);
    writeFileSync(planted, Buffer.from('planted: not a part of any backup\n'.repeat(100)));
    // Two days old: reading it would move its access time (relatime updates an atime older than a day).
    const old = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    utimesSync(planted, old, old);
    const atime = () => statSync(planted).atimeMs;
    const untouched = atime();
    try {
      const verified = await verifyCli(first.id);
      assert.equal(verified.code, 0, verified.out);
      assert.equal(atime(), untouched, 'lifeline verify read the planted object');
      const atBackup = await contentOf(source.url);
      await query(source.url, `DELETE FROM ${quoteIdent(PARTS_TABLES.big[0])}.${quoteIdent(PARTS_TABLES.big[1])} WHERE id % 2 = 0`);
      const result = await restore({});
      assert.equal(result.outcome, 'restored');
      assert.deepEqual(await contentOf(source.url), atBackup);
      assert.equal(atime(), untouched, 'the restore read the planted object');
      assert.ok(readdirSync(path.dirname(planted)).includes(path.basename(planted)));
    } finally {
      rmSync(planted, { force: true });
    }
  });
});
