#!/bin/sh
':' //; exec env MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}" node --max-semi-space-size=4 "$0" "$@"
// Line 2 is for sh, which runs this file first (for node it is a string and a comment): it starts node
// with the settings a worker's memory was measured with, in this same process (exec), for every command.
// They are bin/worker-settings.js's (a unit test holds the two together; README, "Worker memory").
// Runs the compiled CLI after `npm run build`, otherwise the TypeScript sources through tsx.
const path = require('node:path');
const fs = require('node:fs');

const root = path.resolve(__dirname, '..');
const compiled = path.join(root, 'dist', 'src', 'cli', 'main.js');
let entry = compiled;
if (!fs.existsSync(compiled)) {
  require('tsx/cjs');
  entry = path.join(root, 'src', 'cli', 'main.ts');
}
require(entry)
  .main(process.argv.slice(2))
  .then((code) => process.exit(code), (err) => {
    process.stderr.write(`lifeline: ${err && err.message ? err.message : err}\n`);
    process.exit(1);
  });
