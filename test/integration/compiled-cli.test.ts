/**
 * `lifeline` runs the compiled build (dist/) when it is fresh, and never when it is stale: a copy of the
 * project (its sources, bin/, the build script, and the checkout's dist/ with its times kept, or a build
 * made here) is run as a person runs it, `bin/lifeline.js` as an executable, and a preloaded script
 * reports at exit which files the process loaded. No timing is asserted (npm run bench:cli measures it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

interface BuildScript {
  staleness(root: string): string | undefined;
  build(root: string, say?: (line: string) => void): string | undefined;
  STAMP: string;
}

const checkout = path.resolve(__dirname, '..', '..');
const work = mkdtempSync(path.join(tmpdir(), 'lifeline-compiled-cli-'));
const project = path.join(work, 'project');
const build = require(path.join(checkout, 'scripts', 'build.js')) as BuildScript;
const report = path.join(work, 'report.js');
const reportFile = path.join(work, 'report.json');

/** What a run loaded: every module file, relative to the copy (or to node_modules). */
interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  loaded: string[];
}

function lifeline(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  rmSync(reportFile, { force: true });
  const run = spawnSync(path.join(project, 'bin', 'lifeline.js'), args, {
    cwd: work,
    encoding: 'utf8',
    env: { ...demoEnv, ...env, NODE_OPTIONS: `--require ${report}`, REPORT_FILE: reportFile },
  });
  const loaded = (JSON.parse(readFileSync(reportFile, 'utf8')) as string[]).map((f) =>
    f.includes('/node_modules/') ? f.slice(f.lastIndexOf('/node_modules/') + 1) : path.relative(project, f),
  );
  return { status: run.status, stdout: run.stdout, stderr: run.stderr, loaded };
}

const ranCompiled = (r: Run) => r.loaded.includes('dist/src/cli/main.js') && !r.loaded.some((f) => f.endsWith('.ts') || f.startsWith('node_modules/tsx/'));
const ranSources = (r: Run) => r.loaded.includes('src/cli/main.ts') && r.loaded.some((f) => f.startsWith('node_modules/tsx/')) && !r.loaded.some((f) => f.startsWith('dist/'));
const packages = (r: Run, names: string[]) => names.filter((n) => r.loaded.some((f) => f.startsWith(`node_modules/${n}/`)));

let demoEnv: NodeJS.ProcessEnv;

before(() => {
  // The copy: what the build reads and what runs, with the checkout's times (so its dist/ stays fresh).
  mkdirSync(path.join(project, 'scripts'), { recursive: true });
  for (const p of ['src', 'workflows', 'activities', 'bin', 'dist', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.js', 'scripts/bundle-workflows.ts']) {
    if (existsSync(path.join(checkout, p))) cpSync(path.join(checkout, p), path.join(project, p), { recursive: true, preserveTimestamps: true });
  }
  symlinkSync(path.join(checkout, 'node_modules'), path.join(project, 'node_modules'));
  rmSync(path.join(project, 'dist', '.build-lock'), { force: true });
  if (build.staleness(project)) {
    const failed = build.build(project, () => undefined);
    assert.equal(failed, undefined, `the build failed: ${failed}`);
  }
  writeFileSync(
    report,
    `process.on('exit', () => require('node:fs').writeFileSync(process.env.REPORT_FILE, JSON.stringify(Object.keys(require.cache))));\n`,
  );
  const keyFile = path.join(work, 'master.key');
  demoEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: 'postgresql://demo@127.0.0.1:1/ledger',
    BACKUP_DIR: path.join(work, 'backups'),
    BACKUP_ENCRYPTION_KEY: keyFile,
    // Nothing listens there: status reports Temporal unreachable.
    TEMPORAL_ADDRESS: '127.0.0.1:1',
  };
  const init = lifeline(['keys', 'init', '--file', keyFile]);
  assert.equal(init.status, 0, init.stderr);
});

after(() => rmSync(work, { recursive: true, force: true }));

describe('the compiled CLI', () => {
  it('runs from dist/ when the build is fresh: no tsx, no TypeScript source, the same output as from the sources', () => {
    assert.equal(build.staleness(project), undefined);
    for (const args of [['--help'], ['list'], ['list', '--json'], ['status']]) {
      const compiled = lifeline(args);
      assert.ok(ranCompiled(compiled), `lifeline ${args.join(' ')} loaded ${compiled.loaded.filter((f) => !f.startsWith('node_modules/')).join(', ')}`);
      const sources = lifeline(args, { LIFELINE_FROM_SOURCE: '1' });
      assert.ok(ranSources(sources), `LIFELINE_FROM_SOURCE=1 lifeline ${args.join(' ')} ran the sources`);
      assert.deepEqual(
        { status: compiled.status, stdout: compiled.stdout, stderr: compiled.stderr },
        { status: sources.status, stdout: sources.stdout, stderr: sources.stderr },
        `lifeline ${args.join(' ')}`,
      );
    }
  });

  it('loads only what the command needs', () => {
    const help = lifeline(['--help']);
    assert.deepEqual(help.loaded.filter((f) => f.startsWith('dist/src/cli/commands/')), [], 'the help loads no command');
    assert.deepEqual(packages(help, ['zod', 'pino', 'yaml', '@aws-sdk', '@temporalio', 'pg']), []);
    // list reads the local repository: no AWS SDK (no S3 destination, no KMS key), no Temporal, no PostgreSQL,
    // no YAML config, and no logger (it logs nothing).
    const list = lifeline(['list']);
    assert.deepEqual(list.loaded.filter((f) => f.startsWith('dist/src/cli/commands/')), ['dist/src/cli/commands/list.js']);
    assert.deepEqual(packages(list, ['@aws-sdk', '@smithy', '@temporalio', '@grpc', 'pg', 'yaml', 'pino', 'nodemailer', 'webpack']), []);
    // status asks Temporal: its client, but not the worker's SDK, the AWS SDK or pg.
    const status = lifeline(['status']);
    assert.match(status.stdout, /last run +Temporal unreachable/);
    assert.deepEqual(packages(status, ['@aws-sdk', '@smithy', '@temporalio/worker', 'pg', 'yaml', 'nodemailer', 'webpack']), []);
  });

  it('runs the sources, not dist/, once a source is newer than the build', () => {
    const source = path.join(project, 'src', 'cli', 'output.ts');
    const { atime, mtime } = statSync(source);
    const later = new Date(Date.now() + 5_000);
    utimesSync(source, later, later);
    try {
      assert.equal(build.staleness(project), 'src/cli/output.ts changed since the last build');
      const run = lifeline(['--help']);
      assert.equal(run.status, 0);
      assert.ok(ranSources(run), `ran ${run.loaded.filter((f) => !f.startsWith('node_modules/')).join(', ')}`);
      const check = spawnSync(process.execPath, [path.join(project, 'scripts', 'build.js'), '--check'], { encoding: 'utf8' });
      assert.equal(check.status, 1);
      assert.match(check.stdout, /dist\/ is stale: src\/cli\/output\.ts changed since the last build/);
    } finally {
      utimesSync(source, atime, mtime);
    }
    // A new package-lock.json (other dependencies) is a change too.
    const lock = path.join(project, 'package-lock.json');
    const was = statSync(lock);
    utimesSync(lock, later, later);
    try {
      assert.equal(build.staleness(project), 'package-lock.json changed since the last build');
      assert.ok(ranSources(lifeline(['--help'])));
    } finally {
      utimesSync(lock, was.atime, was.mtime);
    }
    assert.ok(ranCompiled(lifeline(['--help'])), 'fresh again with the old times');
  });

  it('runs the sources when a source was replaced by another version with an older time (tar, rsync -a, cp -p), or removed', () => {
    const source = path.join(project, 'src', 'cli', 'output.ts');
    const saved = readFileSync(source);
    const { atime, mtime } = statSync(source);
    // Another version of the file, with a time before the build (a release unpacked over the checkout).
    const older = new Date(mtime.getTime() - 86_400_000);
    writeFileSync(source, `${saved.toString('utf8')}\nexport const anotherVersion = 1;\n`);
    utimesSync(source, older, older);
    try {
      assert.equal(build.staleness(project), 'src/cli/output.ts changed since the last build');
      assert.ok(ranSources(lifeline(['--help'])), 'dist/ was compiled from the other version');
    } finally {
      writeFileSync(source, saved);
      utimesSync(source, atime, mtime);
    }
    assert.ok(ranCompiled(lifeline(['--help'])), 'fresh again with the file and its time as built');
    const moved = `${source}.moved`;
    renameSync(source, moved);
    try {
      assert.equal(build.staleness(project), 'src/cli/output.ts was removed since the last build');
    } finally {
      renameSync(moved, source);
    }
    assert.equal(build.staleness(project), undefined);
  });

  it('does not run a build that did not finish', () => {
    const stamp = path.join(project, build.STAMP);
    const saved = readFileSync(stamp);
    const { mtime } = statSync(stamp);
    rmSync(stamp);
    try {
      assert.equal(build.staleness(project), 'the last build did not finish');
      assert.ok(ranSources(lifeline(['--help'])));
    } finally {
      writeFileSync(stamp, saved);
      utimesSync(stamp, mtime, mtime);
    }
  });

  it('rebuilds: fresh afterwards, and a source saved while the build ran leaves it stale', () => {
    const source = path.join(project, 'src', 'cli', 'output.ts');
    const edited = new Date(Date.now() - 1_000);
    utimesSync(source, edited, edited);
    assert.ok(build.staleness(project));
    const failed = build.build(project, () => undefined);
    assert.equal(failed, undefined);
    assert.equal(build.staleness(project), undefined);
    assert.ok(ranCompiled(lifeline(['list'])));
    // The stamp's time is the build's start: a file saved after tsc read it is newer than the stamp.
    const stamp = path.join(project, build.STAMP);
    const { started, finished } = JSON.parse(readFileSync(stamp, 'utf8')) as { started: string; finished: string };
    assert.ok(Math.abs(statSync(stamp).mtimeMs - Date.parse(started)) < 1, 'the stamp has the time the build started');
    const during = new Date((Date.parse(started) + Date.parse(finished)) / 2 + 1);
    utimesSync(source, during, during);
    assert.equal(build.staleness(project), 'src/cli/output.ts changed since the last build');
  });
});
