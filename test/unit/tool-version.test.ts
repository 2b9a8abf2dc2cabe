import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { majorVersion, requireRestoreTool, restoreToolProblem } from '../../src/restore/tool-version';
import { pgTool, toolVersion } from '../../src/postgres/binaries';

describe('a restore refuses a pg_restore older than the archive needs', () => {
  it('reads major versions as PostgreSQL numbers them', () => {
    assert.deepEqual(majorVersion('15.14'), [15]);
    assert.deepEqual(majorVersion('17beta1'), [17]);
    assert.deepEqual(majorVersion('16.4 (Debian 16.4-1.pgdg120+1)'), [16]);
    assert.deepEqual(majorVersion('9.6.24'), [9, 6]);
    assert.deepEqual(majorVersion('10.23'), [10]);
    assert.equal(majorVersion('unknown'), undefined);
  });

  it('compares majors: an older pg_restore is refused, naming both versions; same or newer passes', () => {
    assert.match(restoreToolProblem('16.2', '15.14')!, /pg_dump 16\.2 \(PostgreSQL 16\).*pg_restore is 15\.14 \(PostgreSQL 15\), older/);
    assert.equal(restoreToolProblem('15.2', '15.14'), undefined, 'a minor release apart is the same major');
    assert.equal(restoreToolProblem('15.14', '15.2'), undefined);
    assert.equal(restoreToolProblem('15.14', '17.0'), undefined);
    assert.equal(restoreToolProblem('9.6.24', '10.1'), undefined);
    assert.match(restoreToolProblem('9.6.24', '9.5.3')!, /PostgreSQL 9\.6.*PostgreSQL 9\.5/);
    assert.equal(restoreToolProblem('9.6.24', '9.6.1'), undefined);
    assert.match(restoreToolProblem('garbage', '15.1')!, /not a version number/);
  });

  it('refuses a backup whose pg_dump is newer than this worker pg_restore, before anything runs', async () => {
    const ours = await toolVersion(pgTool('pg_restore'));
    const newer = `${majorVersion(ours)![0]! + 1}.0`;
    await assert.rejects(requireRestoreTool({ id: 'db-20260101T000000Z-full', postgres: { serverVersion: newer, pgDumpVersion: newer } }), (err: Error & { hint?: string }) => {
      assert.match(err.message, new RegExp(`backup db-20260101T000000Z-full cannot be restored by .*pg_restore: .*pg_dump ${newer.replace('.', '\\.')}.*pg_restore is ${ours.replace(/\./g, '\\.')}`));
      assert.match(err.hint!, /client tools/);
      return true;
    });
    await requireRestoreTool({ id: 'db-20260101T000000Z-full', postgres: { serverVersion: ours, pgDumpVersion: ours } });
  });
});
