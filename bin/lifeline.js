#!/bin/sh
':' //; exec env MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}" node --max-semi-space-size=4 "$0" "$@"
// Line 2 is for sh, which runs this file first (for node it is a string and a comment): it starts node
// with the settings a worker's memory was measured with, in this same process (exec), for every command.
// They are bin/worker-settings.js's (a unit test holds the two together; README, "Worker memory").
// Runs the compiled CLI (dist/, built by `npm run build` or `npm start`) when it is fresh: built by a
// build that succeeded and no source changed since (scripts/build.js). Otherwise, or with
// LIFELINE_FROM_SOURCE=1, the TypeScript sources through tsx: never stale compiled code.
const path = require('node:path');
const fs = require('node:fs');

const root = path.resolve(__dirname, '..');
const compiled = path.join(root, 'dist', 'src', 'cli', 'main.js');
const sources = path.join(root, 'src', 'cli', 'main.ts');

/** Why the compiled CLI is not run, or undefined to run it. */
function notCompiled() {
  if (process.env.LIFELINE_FROM_SOURCE === '1') return 'LIFELINE_FROM_SOURCE=1';
  if (!fs.existsSync(compiled)) return 'not built yet';
  // An installation of dist/ without the build script or the sources has nothing to be stale against.
  if (!fs.existsSync(path.join(root, 'scripts', 'build.js'))) return undefined;
  return require('../scripts/build.js').staleness(root);
}

const why = fs.existsSync(sources) ? notCompiled() : undefined;
let entry = compiled;
if (why) {
  if (process.stderr.isTTY && why !== 'LIFELINE_FROM_SOURCE=1') {
    process.stderr.write(`lifeline: running the TypeScript sources through tsx, slower to start (${why}); \`npm run build\` compiles them\n`);
  }
  require('tsx/cjs');
  entry = sources;
}
require(entry).run(process.argv.slice(2));
