import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, errorMessage, LifelineError, rootCauseMessage } from '../../src/errors';
import { looksLikeKey, redact, redactError, registerSecret, urlHoldsPassword } from '../../src/security/redact';
import { resolveConnection, libpqEnv } from '../../src/postgres/connection';
import { checkCommandEnv } from '../../src/restore/check-command';
import type { DatabaseConfig } from '../../src/config/config';

describe('redact', () => {
  it('hides the password of every URL, whatever its scheme, and keeps the rest readable', () => {
    assert.equal(redact('DATABASE_URL = "postgresql://app:S3cret@db.internal:5432/moneyflow": bad'), 'DATABASE_URL = "postgresql://app:***@db.internal:5432/moneyflow": bad');
    assert.equal(redact('a postgres://u:p%40ss@h/db and smtp://mail:pw@mx:25'), 'a postgres://u:***@h/db and smtp://mail:***@mx:25');
    assert.equal(redact('postgresql://u:p@ss@h/db'), 'postgresql://u:***@h/db', 'an unencoded @ in the password stays hidden');
    assert.equal(redact('postgresql://app@h:5432/db'), 'postgresql://app@h:5432/db', 'no password: unchanged');
  });

  it('hides password= parameters in URLs, conninfo strings and environment listings', () => {
    assert.equal(redact('postgresql://app@h/db?sslmode=require&password=S3cret&x=1'), 'postgresql://app@h/db?sslmode=require&password=***&x=1');
    assert.equal(redact("host=h password='a b' dbname=x"), 'host=h password=*** dbname=x');
    assert.equal(redact('PGPASSWORD=hunter22 BACKUP_SMTP_PASSWORD=x7y8z9'), 'PGPASSWORD=*** BACKUP_SMTP_PASSWORD=***');
  });

  it('hides registered secrets as written, URL-encoded and in base64', () => {
    const secret = `s3-secret/${Math.random().toString(36).slice(2)}+x`;
    registerSecret(secret);
    assert.equal(redact(`key ${secret}!`), 'key ***!');
    assert.equal(redact(`q=${encodeURIComponent(secret)}`), 'q=***');
    assert.match(redact(`basic ${Buffer.from(secret).toString('base64')}`), /^basic \*\*\*=*$/);
    registerSecret('abc'); // too short to search for: would blank out ordinary words
    assert.equal(redact('abcdef'), 'abcdef');
  });

  it('is applied to every LifelineError message, hint, detail and ConfigError problem', () => {
    const err = new LifelineError('X', 'cannot reach postgresql://a:b1@h/db', { hint: 'try password=zz', details: { url: 'postgres://a:b2@h/d' } });
    assert.equal(err.describe(), 'cannot reach postgresql://a:***@h/db\n  → try password=***');
    assert.deepEqual(err.details, { url: 'postgres://a:***@h/d' });
    const config = new ConfigError(['DATABASE_URL = "postgresql://app:S3cret@h:x/db": must be a URL']);
    assert.doesNotMatch(config.message + config.problems.join(), /S3cret/);
  });

  it('is applied to what an operator or a notice is shown of any error', () => {
    assert.equal(errorMessage(new Error('connect postgresql://u:pw3@h/db')), 'connect postgresql://u:***@h/db');
    assert.equal(rootCauseMessage(new Error('outer', { cause: new Error('inner password=pw4') })), 'inner password=***');
  });

  it('redacts an unexpected error, its stack and its causes in place', () => {
    const err = new Error('outer postgresql://u:pw1@h/db', { cause: new Error('inner ?password=pw2') });
    redactError(err);
    assert.doesNotMatch(`${err.message} ${err.stack} ${(err.cause as Error).message} ${(err.cause as Error).stack}`, /pw1|pw2/);
  });

  it('tells URLs with a password, and values that look like a master key', () => {
    assert.ok(urlHoldsPassword('postgresql://u:p@h/db'));
    assert.ok(urlHoldsPassword('postgresql://u@h/db?password=p'));
    assert.ok(!urlHoldsPassword('postgresql://u@h/db?sslmode=require'));
    assert.ok(looksLikeKey('a'.repeat(64)));
    assert.ok(looksLikeKey(Buffer.alloc(32, 7).toString('base64')));
    assert.ok(!looksLikeKey('.lifeline/keys/master.key'));
  });
});

describe('connections and check commands', () => {
  const db = (url: string) => ({ name: 'x', url }) as DatabaseConfig;

  it('moves ?password= and ?passfile= out of the URL into the environment', () => {
    const conn = resolveConnection(db('postgresql://app@h:5432/db?sslmode=disable&password=Pa55word&passfile=/run/pgpass'));
    assert.equal(conn.safeUrl, 'postgresql://app@h:5432/db?sslmode=disable');
    const env = libpqEnv(conn, {});
    assert.equal(env.PGPASSWORD, 'Pa55word');
    assert.equal(env.PGPASSFILE, '/run/pgpass');
    assert.equal(resolveConnection(db('postgresql://app@h/db?application_name=a%20b')).safeUrl, 'postgresql://app@h/db?application_name=a%20b', 'a query without them is left as written');
  });

  it('gives a check command PATH, HOME, LANG, the PG* variables and its own LIFELINE_* variables, none of the worker secrets', () => {
    const conn = resolveConnection(db('postgresql://app:Pw0rd!@[::1]:6543/restored'));
    const env = checkCommandEnv(conn, { database: 'moneyflow', backupId: 'b1' }, {
      PATH: '/usr/bin', HOME: '/root', LANG: 'C.UTF-8', LIFELINE_CHECK_TOKEN: 't',
      BACKUP_S3_SECRET_ACCESS_KEY: 's3', BACKUP_SMTP_PASSWORD: 'smtp', AWS_SECRET_ACCESS_KEY: 'aws', LIFELINE_TEST_S3_SECRET: 'x',
    });
    assert.deepEqual(Object.keys(env).sort(), ['DATABASE_URL', 'HOME', 'LANG', 'LIFELINE_BACKUP_ID', 'LIFELINE_CHECK_TOKEN', 'LIFELINE_DATABASE', 'PATH', 'PGDATABASE', 'PGHOST', 'PGPASSWORD', 'PGPORT', 'PGUSER']);
    assert.equal(env.PGHOST, '::1');
    assert.equal(env.PGPASSWORD, 'Pw0rd!');
    assert.equal(env.DATABASE_URL, 'postgresql://app:Pw0rd!@[::1]:6543/restored');
  });
});
