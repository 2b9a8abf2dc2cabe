import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { COMMANDS } from '../../src/cli/main';

const commandsDir = path.resolve(__dirname, '..', '..', 'src', 'cli', 'commands');
const commandModulesLoaded = () => Object.keys(require.cache).filter((f) => f.startsWith(commandsDir + path.sep));

/** Runs `lifeline ARGS` through main() in a new process: its exit code, its stdout, and the command modules it loaded. */
function cli(args: string[]): { code: number; out: string; loaded: string[] } {
  const script = `
    const path = require('node:path');
    require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.ts'))}).main(${JSON.stringify(args)}).then((code) => {
      const loaded = Object.keys(require.cache).filter((f) => f.startsWith(${JSON.stringify(commandsDir + path.sep)}));
      process.stderr.write(JSON.stringify({ code, loaded }));
    });`;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8' });
  const { code, loaded } = JSON.parse(run.stderr) as { code: number; loaded: string[] };
  return { code, out: run.stdout, loaded };
}

describe("the CLI's command table", () => {
  it('prints the help without loading any command', () => {
    const { code, out, loaded } = cli(['--help']);
    assert.equal(code, 0);
    for (const c of COMMANDS) assert.ok(out.split('\n').some((line) => line.startsWith(`  ${c.name} `) && line.endsWith(`  ${c.summary}`)), `${c.name} in:\n${out}`);
    assert.deepEqual(loaded, []);
  });

  it("loads only the command that runs (a command's --help loads its module alone)", () => {
    const { code, out, loaded } = cli(['list', '--help']);
    assert.equal(code, 0);
    assert.match(out, /^Usage: lifeline list/m);
    assert.deepEqual(loaded, [path.join(commandsDir, 'list.ts')]);
  });

  it("holds each command's own name and summary, and every command module", async () => {
    const modules = new Set<string>();
    for (const entry of COMMANDS) {
      const before = new Set(commandModulesLoaded());
      const command = entry.load();
      for (const f of commandModulesLoaded()) if (!before.has(f)) modules.add(path.basename(f));
      assert.equal(command.name, entry.name);
      assert.equal(entry.summary, command.summary, `the summary of ${entry.name} in src/cli/main.ts is the module's`);
    }
    assert.equal(new Set(COMMANDS.map((c) => c.name)).size, COMMANDS.length, 'no name twice');
    const all = readdirSync(commandsDir).filter((f) => f.endsWith('.ts'));
    assert.deepEqual(all.filter((f) => !commandModulesLoaded().includes(path.join(commandsDir, f))), [], 'a command module the table does not list');
  });
});
