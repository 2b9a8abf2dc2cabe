import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ENV, hasWorkerSettings, missingFlags, NODE_FLAGS, workerEnv } from '../../bin/worker-settings';

const root = path.resolve(__dirname, '..', '..');
const dir = mkdtempSync(path.join(tmpdir(), 'lifeline-worker-settings-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** How `lifeline` (bin/lifeline.js, run as an executable) starts node: a preloaded script reports it and exits. */
function started(env: NodeJS.ProcessEnv): { execArgv: string[]; env: NodeJS.ProcessEnv } {
  const report = path.join(dir, 'report.js');
  writeFileSync(report, 'process.stdout.write(JSON.stringify({ execArgv: process.execArgv, env: process.env })); process.exit(0);\n');
  const run = spawnSync(path.join(root, 'bin', 'lifeline.js'), ['--help'], { env: { ...env, NODE_OPTIONS: `--require ${report}` }, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as { execArgv: string[]; env: NodeJS.ProcessEnv };
}

describe("the settings a worker's process starts with", () => {
  it('are those lifeline starts node with, in its own process', () => {
    const { execArgv, env } = started({ PATH: process.env.PATH });
    assert.ok(hasWorkerSettings(execArgv, { ...env, NODE_OPTIONS: '' }), `started with ${execArgv.join(' ')}, MALLOC_ARENA_MAX=${env.MALLOC_ARENA_MAX}`);
    for (const flag of NODE_FLAGS) assert.ok(execArgv.includes(flag), flag);
    for (const [k, v] of Object.entries(ENV)) assert.equal(env[k], v, k);
  });

  it("leave an operator's own malloc setting alone", () => {
    const { env } = started({ PATH: process.env.PATH, MALLOC_ARENA_MAX: '4' });
    assert.equal(env.MALLOC_ARENA_MAX, '4');
    assert.equal(workerEnv({ MALLOC_ARENA_MAX: '4' }).MALLOC_ARENA_MAX, '4');
  });

  it('count a flag given in NODE_OPTIONS, whatever its value', () => {
    assert.deepEqual(missingFlags([], {}), [...NODE_FLAGS]);
    assert.deepEqual(missingFlags([], { NODE_OPTIONS: NODE_FLAGS.map((f) => `${f.split('=')[0]}=16`).join(' ') }), []);
    assert.equal(hasWorkerSettings([...NODE_FLAGS], {}), false, 'the environment is missing');
    assert.equal(hasWorkerSettings([...NODE_FLAGS], { ...ENV }), true);
  });
});
