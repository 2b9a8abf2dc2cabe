import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import { configuredDatabaseAt, resolveTarget } from '../../src/restore/target';

function fleet(extra = '', env: Record<string, string> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'lifeline-target-'));
  writeFileSync(
    path.join(dir, 'lifeline.config.yaml'),
    `databases:
  - name: moneyflow
    url: postgresql://backup:pw@db1.example.com/moneyflow
  - name: local_app
    url: postgresql://app@127.0.0.1:5433/app%20db
  - name: scratch
    url: postgresql://app@db2.example.com:5432/scratch
    production: false
    allowForceRestore: true
${extra}`,
  );
  return loadConfig({ cwd: dir, env });
}

describe('restore targets', () => {
  it('a URL that names a configured database is that database, however it is spelled', async () => {
    const config = fleet();
    for (const url of [
      'postgresql://other@DB1.Example.COM:5432/moneyflow',
      'postgres://db1.example.com/moneyflow?sslmode=require',
      'postgresql://x@db1.example.com/mon%65yflow',
    ]) {
      assert.equal((await configuredDatabaseAt(config, url))?.name, 'moneyflow', url);
      const target = await resolveTarget(config, url);
      assert.deepEqual([target.name, target.production, target.allowForceRestore, target.fourEyes], ['moneyflow', true, false, true], url);
      assert.match(target.forceRefusal!, /configured database moneyflow.*production/);
    }
    // Every spelling of this machine is one host: loopback addresses however written (as getaddrinfo
    // reads them for libpq and node-postgres), the "any" address, localhost, a Unix socket folder.
    for (const url of [
      'postgresql://u@localhost:5433/app%20db',
      'postgresql://u@[::1]:5433/app%20db',
      'postgresql://u@127.0.0.2:5433/app db',
      'postgresql://%2Fvar%2Frun%2Fpostgresql:5433/app%20db',
      'postgresql://%2Ftmp:5433/app%20db',
      'postgresql://u@127.1:5433/app%20db',
      'postgresql://u@2130706433:5433/app%20db',
      'postgresql://u@0x7f.1:5433/app%20db',
      'postgresql://u@0.0.0.0:5433/app%20db',
      'postgresql://u@[::]:5433/app%20db',
      'postgresql://u@[::ffff:127.0.0.1]:5433/app%20db',
      'postgresql://u@[::ffff:7f00:1]:5433/app%20db',
      'postgresql://u@localhost:05433/app%20db',
    ]) {
      assert.equal((await configuredDatabaseAt(config, url))?.name, 'local_app', url);
    }
  });

  it('another server, port or database is not a configured database', async () => {
    const config = fleet();
    for (const url of [
      'postgresql://u@db1.example.com:5433/moneyflow',
      'postgresql://u@db9.example.com/moneyflow',
      'postgresql://u@db1.example.com/moneyflow_copy',
      'postgresql://u@db1.example.com/MoneyFlow',
      'postgresql://u@localhost/app%20db',
    ]) {
      assert.equal(await configuredDatabaseAt(config, url), undefined, url);
    }
  });

  it('a URL whose query could re-route the connection is refused, naming the parameter', async () => {
    const config = fleet();
    for (const [url, param] of [
      ['postgresql://x@elsewhere/nothing?host=db1.example.com&dbname=moneyflow', '"host", "dbname"'],
      ['postgresql://u@db1.example.com/scratch_copy?dbname=moneyflow', '"dbname"'],
      ['postgresql://u@db9.example.com/moneyflow?hostaddr=10.0.0.1', '"hostaddr"'],
      ['postgresql://u@127.0.0.1/app%20db?port=05433', '"port"'],
      ['postgresql://u@db9.example.com/x?service=prod', '"service"'],
      ['postgresql://u@db9.example.com/x?database=moneyflow', '"database"'],
    ]) {
      await assert.rejects(resolveTarget(config, url!), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'InvalidInput', url);
        assert.ok(err.message.includes(`holds ${param}`), `${url}: ${err.message}`);
        assert.match(err.message, /Put host, port and database in the URL itself; the query may hold only .*sslmode/);
        return true;
      });
    }
    await assert.rejects(resolveTarget(config, 'postgresql://u@a,b/x'), /several hosts/);
    // Harmless parameters stay.
    assert.equal((await resolveTarget(config, 'postgresql://u@db1.example.com/moneyflow?sslmode=require&connect_timeout=5&application_name=x')).name, 'moneyflow');
  });

  it('any other URL is production; --force to it only where allowForceRestoreToUrlTargets says so', async () => {
    const url = 'postgresql://u@db9.example.com/restored';
    const refused = await resolveTarget(fleet(), url);
    assert.deepEqual([refused.production, refused.allowForceRestore, refused.fourEyes], [true, false, true]);
    assert.match(refused.forceRefusal!, /db9\.example\.com:5432\/restored is a URL that names no configured database.*BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS=true/);
    const allowed = await resolveTarget(fleet('allowForceRestoreToUrlTargets: true\n'), url);
    assert.deepEqual([allowed.allowForceRestore, allowed.forceRefusal], [true, undefined]);
    assert.equal((await resolveTarget(fleet('', { BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS: 'true' }), url)).allowForceRestore, true);
    assert.throws(() => fleet('', { BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS: 'yes' }), /BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS = "yes": must be true or false/);
  });

  it('configured databases are production with forced restores off unless they say otherwise; four eyes follow production', async () => {
    const config = fleet();
    const flags = async (name: string) => {
      const t = await resolveTarget(config, name);
      return [t.production, t.allowForceRestore, t.fourEyes, t.forceRefusal === undefined];
    };
    assert.deepEqual(await flags('moneyflow'), [true, false, true, false]);
    assert.deepEqual(await flags('scratch'), [false, true, false, true]);
    const own = fleet(`  - name: reviewed
    url: postgresql://u@db3/reviewed
    production: false
    fourEyes: true
`);
    const reviewed = await resolveTarget(own, 'reviewed');
    assert.deepEqual([reviewed.production, reviewed.fourEyes, reviewed.allowForceRestore], [false, true, false]);
    const [only] = loadConfig({ cwd: mkdtempSync(path.join(tmpdir(), 'lifeline-target-')), env: { DATABASE_URL: 'postgresql://app:pw@db.internal:5432/moneyflow' } }).databases;
    assert.deepEqual([only!.production, only!.allowForceRestore, only!.fourEyes], [true, false, true]);
  });
});
