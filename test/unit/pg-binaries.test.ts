import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pgTool, requireSafeScriptOutput, scriptOutputIsSafe } from '../../src/postgres/binaries';

describe('pg_restore versions whose script output psql may run (CVE-2025-8715)', () => {
  it('knows the first fixed release of each major version', () => {
    for (const v of ['13.22', '14.19', '15.14', '15.20', '16.10', '17.6', '18.0', '19.1']) assert.equal(scriptOutputIsSafe(v), true, v);
    for (const v of ['12.22', '13.21', '14.18', '15.13', '16.9', '17.5', '15', 'weird']) assert.equal(scriptOutputIsSafe(v), false, v);
  });

  it('refuses an older pg_restore by what it says of itself, naming the version and the fix', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeline-old-pg-'));
    const fake = path.join(dir, 'pg_restore');
    writeFileSync(fake, '#!/bin/sh\necho "pg_restore (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)"\n');
    chmodSync(fake, 0o755);
    await assert.rejects(requireSafeScriptOutput(fake), (err: Error & { code?: string }) =>
      err.code === 'ToolTooOld' && /15\.13/.test(err.message) && /CVE-2025-8715/.test(err.message));
  });

  it('accepts the pg_restore installed here', async () => {
    await requireSafeScriptOutput(pgTool('pg_restore'));
  });
});
