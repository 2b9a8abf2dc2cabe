import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Which of the needles Temporal's SQLite files (database, WAL, journal) hold, each as "<what> in <file>". */
export function foundInTemporal(temporalDbFile: string, needles: Array<{ what: string; needle: string }>): string[] {
  const dir = path.dirname(temporalDbFile);
  const files = readdirSync(dir).filter((f) => f.startsWith(path.basename(temporalDbFile)));
  assert.ok(files.length >= 1, 'the SQLite files are there');
  const found: string[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path.join(dir, file));
    } catch {
      continue; // a rollback journal can come and go while we list
    }
    for (const { what, needle } of needles) if (bytes.indexOf(Buffer.from(needle)) !== -1) found.push(`${what} in ${file}`);
  }
  return found;
}

/** Asserts that none of Temporal's SQLite files (database, WAL, journal) holds the secret's bytes. */
export function assertNotStoredByTemporal(temporalDbFile: string, secret: string): void {
  const found = foundInTemporal(temporalDbFile, [{ what: 'secret', needle: secret }]);
  assert.deepEqual(found, [], `secret found in ${found.map((f) => f.replace(/^secret in /, '')).join(', ')}`);
}
