#!/usr/bin/env node
// The compiled build that `npm start`, the `lifeline` bin and the worker run: the TypeScript of src/,
// workflows/ and activities/ compiled by tsc into dist/, and the workflows bundled ahead of time
// (dist/workflow-bundle.js) so a worker does not run webpack at start. Plain JavaScript without
// dependencies of its own: bin/lifeline.js and scripts/bootstrap.js ask it whether dist/ is fresh.
//
// Freshness: dist/.build-stamp is written last, by a build that succeeded, with the time the build
// started as its mtime and every source file's size and mtime as the build found them before tsc ran.
// dist/ is fresh when the sources (below) are exactly those: a file saved during a build, a `git pull`,
// a `git checkout`, a new package-lock.json, but also another version with an OLDER time (a release
// unpacked with tar, rsync -a, cp -p) and a removed or added file make it stale. Stale
// compiled code is never run: bin/lifeline.js runs the sources through tsx instead, and the bootstrap
// (`npm start`) builds first.
//
//   node scripts/build.js            build (npm run build); exits 1 with tsc's errors
//   node scripts/build.js --check    exit 0 when dist/ is fresh, else 1 and the reason
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const STAMP = path.join('dist', '.build-stamp');
/** What the build reads: its source folders (their .ts/.js/.json files) and single files. */
const SOURCE_DIRS = ['src', 'workflows', 'activities'];
const SOURCE_FILES = ['package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/bundle-workflows.ts'];
const SOURCE_EXT = /\.(ts|js|json)$/;

/**
 * Every source file under `root` (relative path → "mtime in whole ms:size"): what a build reads. Whole
 * milliseconds, because a copy that keeps times (cp -p, cpSync preserveTimestamps) keeps only those.
 */
function sourceFiles(root = ROOT) {
  const files = {};
  const add = (full, stat) => (files[path.relative(root, full)] = `${Math.floor(stat.mtimeMs)}:${stat.size}`);
  const walk = (dir) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if (err.code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (SOURCE_EXT.test(e.name)) add(full, fs.statSync(full));
    }
  };
  for (const d of SOURCE_DIRS) walk(path.join(root, d));
  for (const f of SOURCE_FILES) {
    const full = path.join(root, f);
    try {
      add(full, fs.statSync(full));
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
  }
  return files;
}

/**
 * Why dist/ under `root` must not be run (a sentence), or undefined when it is fresh: built by a build
 * that succeeded, from exactly the source files there are now (same names, sizes and times). Not only
 * "no source newer than the build": another version of a file with an older time would pass that.
 */
function staleness(root = ROOT) {
  let stamp;
  try {
    stamp = fs.readFileSync(path.join(root, STAMP), 'utf8');
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
    return fs.existsSync(path.join(root, 'dist')) ? 'the last build did not finish' : 'not built yet';
  }
  let built;
  try {
    built = JSON.parse(stamp).sources;
  } catch {
    built = undefined;
  }
  if (!built || typeof built !== 'object') return 'the last build recorded no sources (an older build script)';
  const now = sourceFiles(root);
  for (const [file, seen] of Object.entries(now)) if (built[file] !== seen) return `${file} changed since the last build`;
  for (const file of Object.keys(built)) if (!(file in now)) return `${file} was removed since the last build`;
  return undefined;
}

const run = (command, args, root) => spawnSync(command, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });

/**
 * Builds dist/ under `root`: tsc (tsconfig.build.json, incremental), then the workflow bundle, then the
 * stamp. Returns undefined on success, else what failed (tsc has printed its errors). A second build
 * started meanwhile waits for this one (dist/.build-lock), then builds only if still stale.
 */
function build(root = ROOT, say = (line) => console.log(line)) {
  const dist = path.join(root, 'dist');
  fs.mkdirSync(dist, { recursive: true });
  const release = lock(path.join(dist, '.build-lock'), say);
  try {
    if (release.waited && !staleness(root)) return undefined;
    const started = new Date();
    // The sources as tsc is about to read them: one saved later no longer matches, so dist/ is stale.
    const sources = sourceFiles(root);
    // The stamp goes first: while files are rewritten, dist/ is not fresh.
    fs.rmSync(path.join(root, STAMP), { force: true });
    const tsc = run(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', 'tsconfig.build.json'], root);
    if (tsc.status !== 0) return `tsc -p tsconfig.build.json failed (exit ${tsc.status ?? tsc.signal})`;
    const bundle = run(process.execPath, ['--import', 'tsx', path.join(root, 'scripts', 'bundle-workflows.ts')], root);
    if (bundle.status !== 0) return `scripts/bundle-workflows.ts failed (exit ${bundle.status ?? bundle.signal})`;
    const stamp = path.join(root, STAMP);
    fs.writeFileSync(stamp, `${JSON.stringify({ started: started.toISOString(), finished: new Date().toISOString(), node: process.version, sources })}\n`);
    // Its mtime is the build's start: a source saved while tsc ran is newer, so the next run rebuilds.
    fs.utimesSync(stamp, started, started);
    return undefined;
  } finally {
    release();
  }
}

/** An exclusive lock file holding our pid; a lock whose process is gone is taken over. */
function lock(file, say) {
  let waited = false;
  let told = false;
  for (;;) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      const release = () => fs.rmSync(file, { force: true });
      release.waited = waited;
      return release;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    const holder = Number(fs.readFileSync(file, 'utf8')) || 0;
    if (!alive(holder)) {
      fs.rmSync(file, { force: true });
      continue;
    }
    if (!told) say(`Waiting for the build already running (pid ${holder})…`);
    told = waited = true;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
  }
}

function alive(pid) {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

module.exports = { ROOT, STAMP, sourceFiles, staleness, build };

if (require.main === module) {
  if (process.argv.includes('--check')) {
    const why = staleness();
    if (why) console.log(`dist/ is stale: ${why}`);
    process.exit(why ? 1 : 0);
  }
  const started = Date.now();
  const failed = build();
  if (failed) {
    console.error(`build: ${failed}`);
    process.exit(1);
  }
  console.log(`build: dist/ is fresh (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
