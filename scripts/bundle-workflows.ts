/** Bundles the workflows once at build time, so a production worker does not run webpack at start. */
import { bundleWorkflowCode } from '@temporalio/worker';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

async function main() {
  const root = path.resolve(__dirname, '..');
  const { code } = await bundleWorkflowCode({ workflowsPath: path.join(root, 'workflows', 'index.ts') });
  const out = path.join(root, 'dist', 'workflow-bundle.js');
  writeFileSync(out, code);
  console.log(`workflow bundle: ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
