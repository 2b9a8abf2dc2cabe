import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Asserts that none of Temporal's SQLite files (database, WAL, journal) holds the secret's bytes. */
export function assertNotStoredByTemporal(temporalDbFile: string, secret: string): void {
  const dir = path.dirname(temporalDbFile);
  const needle = Buffer.from(secret);
  const files = readdirSync(dir).filter((f) => f.startsWith(path.basename(temporalDbFile)));
  assert.ok(files.length >= 1);
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path.join(dir, file));
    } catch {
      continue; // a rollback journal can come and go while we list
    }
    assert.equal(bytes.indexOf(needle), -1, `secret found in ${file}`);
  }
}
