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
  it('a URL that names a configured database is that database, however it is spelled', () => {
    const config = fleet();
    for (const url of [
      'postgresql://other@DB1.Example.COM:5432/moneyflow',
      'postgres://db1.example.com/moneyflow?sslmode=require',
      'postgresql://x@elsewhere/nothing?host=db1.example.com&dbname=moneyflow',
      'postgresql://x@db1.example.com/mon%65yflow',
    ]) {
      assert.equal(configuredDatabaseAt(config, url)?.name, 'moneyflow', url);
      const target = resolveTarget(config, url);
      assert.deepEqual([target.name, target.production, target.allowForceRestore, target.fourEyes], ['moneyflow', true, false, true], url);
      assert.match(target.forceRefusal!, /configured database moneyflow.*production/);
    }
    // Every spelling of this machine is one host: loopback addresses, localhost, a Unix socket folder.
    for (const url of [
      'postgresql://u@localhost:5433/app%20db',
      'postgresql://u@[::1]:5433/app%20db',
      'postgresql://u@127.0.0.2:5433/app db',
      'postgresql:///app%20db?host=/var/run/postgresql&port=5433',
      'postgresql://%2Ftmp:5433/app%20db',
    ]) {
      assert.equal(configuredDatabaseAt(config, url)?.name, 'local_app', url);
    }
  });

  it('another server, port or database is not a configured database', () => {
    const config = fleet();
    for (const url of [
      'postgresql://u@db1.example.com:5433/moneyflow',
      'postgresql://u@db9.example.com/moneyflow',
      'postgresql://u@db1.example.com/moneyflow_copy',
      'postgresql://u@db1.example.com/MoneyFlow',
      'postgresql://u@localhost/app%20db',
    ]) {
      assert.equal(configuredDatabaseAt(config, url), undefined, url);
    }
  });

  it('any other URL is production; --force to it only where allowForceRestoreToUrlTargets says so', () => {
    const url = 'postgresql://u@db9.example.com/restored';
    const refused = resolveTarget(fleet(), url);
    assert.deepEqual([refused.production, refused.allowForceRestore, refused.fourEyes], [true, false, true]);
    assert.match(refused.forceRefusal!, /db9\.example\.com:5432\/restored is a URL that names no configured database.*BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS=true/);
    const allowed = resolveTarget(fleet('allowForceRestoreToUrlTargets: true\n'), url);
    assert.deepEqual([allowed.allowForceRestore, allowed.forceRefusal], [true, undefined]);
    assert.equal(resolveTarget(fleet('', { BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS: 'true' }), url).allowForceRestore, true);
    assert.throws(() => fleet('', { BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS: 'yes' }), /BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS = "yes": must be true or false/);
  });

  it('configured databases are production with forced restores off unless they say otherwise; four eyes follow production', () => {
    const config = fleet();
    const flags = (name: string) => {
      const t = resolveTarget(config, name);
      return [t.production, t.allowForceRestore, t.fourEyes, t.forceRefusal === undefined];
    };
    assert.deepEqual(flags('moneyflow'), [true, false, true, false]);
    assert.deepEqual(flags('scratch'), [false, true, false, true]);
    const own = fleet(`  - name: reviewed
    url: postgresql://u@db3/reviewed
    production: false
    fourEyes: true
`);
    assert.deepEqual([resolveTarget(own, 'reviewed').production, resolveTarget(own, 'reviewed').fourEyes, resolveTarget(own, 'reviewed').allowForceRestore], [false, true, false]);
    const [only] = loadConfig({ cwd: mkdtempSync(path.join(tmpdir(), 'lifeline-target-')), env: { DATABASE_URL: 'postgresql://app:pw@db.internal:5432/moneyflow' } }).databases;
    assert.deepEqual([only!.production, only!.allowForceRestore, only!.fourEyes], [true, false, true]);
  });
});
