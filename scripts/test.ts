/**
 * `npm test`: installs what the tests need, starts one Temporal dev server and one private
 * PostgreSQL cluster for the whole run, runs every test file with Node's test runner, and stops
 * the servers. Server logs stay in the printed folder when a test fails.
 */
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ENV, newWorkDir, startTestServers } from '../test/harness/servers';

const root = path.resolve(__dirname, '..');

function testFiles(): string[] {
  const groups = ['unit', 'security', 'integration', 'replay'];
  const only = process.argv.slice(2);
  return groups
    .flatMap((g) => readdirSync(path.join(root, 'test', g)).filter((f) => f.endsWith('.test.ts')).map((f) => path.join('test', g, f)))
    .filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
}

async function main(): Promise<number> {
  const workDir = newWorkDir('test');
  console.log(`Starting test servers in ${workDir}…`);
  const servers = await startTestServers(workDir);
  const env = {
    ...process.env,
    [ENV.address]: servers.temporalAddress,
    [ENV.dbFile]: servers.temporalDbFile,
    [ENV.pgDir]: servers.cluster.dir,
    [ENV.pgPort]: String(servers.cluster.port),
    [ENV.workDir]: workDir,
    [ENV.s3]: JSON.stringify(servers.s3),
    [ENV.kms]: JSON.stringify(servers.kms),
  };
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...testFiles()], {
      cwd: root,
      env,
      stdio: 'inherit',
    });
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
  await servers.stop();
  if (code === 0) rmSync(workDir, { recursive: true, force: true });
  else console.log(`Server logs kept in ${workDir}`);
  return code;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
