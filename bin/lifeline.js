#!/usr/bin/env node
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
