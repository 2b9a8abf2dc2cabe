#!/usr/bin/env node
// Entry point of `npm start`, `npm test` and `npm run bench` on a fresh clone: installs the npm
// packages when they are missing or stale; `npm start` then builds dist/ when it is missing or older
// than the sources (scripts/build.js) and runs the compiled CLI; tests and benchmarks run their
// TypeScript entry point through tsx.
// Plain JavaScript with no dependencies, because it runs before node_modules exists.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const ENTRY = {
  up: ['src/cli/main.ts', 'up'],
  test: ['scripts/test.ts'],
  bench: ['scripts/bench.ts'],
  'bench-restore': ['scripts/bench-restore.ts'],
  'bench-offsite': ['scripts/bench-offsite.ts'],
  'bench-drill': ['scripts/bench-drill.ts'],
};

function stale() {
  const installed = path.join(root, 'node_modules', '.package-lock.json');
  if (!fs.existsSync(installed)) return true;
  const lock = path.join(root, 'package-lock.json');
  return fs.statSync(lock).mtimeMs > fs.statSync(installed).mtimeMs;
}

const [task, ...rest] = process.argv.slice(2);
if (!ENTRY[task]) {
  console.error(`bootstrap: unknown task ${task} (one of ${Object.keys(ENTRY).join(', ')})`);
  process.exit(2);
}
if (stale()) {
  console.log('Installing npm packages (npm ci)…');
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (npm.status !== 0) process.exit(npm.status ?? 1);
}
let [script, ...args] = ENTRY[task];
let loader = ['--import', 'tsx'];
if (task === 'up') {
  // The compiled CLI, rebuilt first when a source changed since the last build; a build that fails
  // (a type error while editing) leaves the sources to tsx, as before: never stale compiled code.
  const build = require('./build');
  const why = build.staleness(root);
  if (why) {
    console.log(`Building dist/ (tsc, workflow bundle): ${why}…`);
    const failed = build.build(root);
    if (failed) console.error(`bootstrap: ${failed}; running the TypeScript sources through tsx instead`);
  }
  if (!build.staleness(root)) {
    script = 'dist/src/cli/main.js';
    loader = [];
  }
}
// `up` runs a worker: in a process started with the settings its memory was measured with.
const worker = task === 'up' ? require('../bin/worker-settings') : undefined;
const child = spawn(process.execPath, [...(worker ? worker.missingFlags() : []), ...loader, path.join(root, script), ...args, ...rest], {
  cwd: process.cwd(),
  stdio: 'inherit',
  env: worker ? worker.workerEnv() : process.env,
});
// Ctrl-C reaches the child too (same process group): let it stop what it started, then exit with it.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
