/** Bundles the workflows once at build time, so a production worker does not run webpack at start. */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FAILURE_CONVERTER_PATH } from '../src/temporal/data-converter';

async function main() {
  const root = path.resolve(__dirname, '..');
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.join(root, 'workflows', 'index.ts'),
    // Failure messages and stacks leave the workflow encoded (the codec encrypts them).
    failureConverterPath: FAILURE_CONVERTER_PATH,
    // webpack's module list only when something is wrong (npm start builds on a terminal).
    logger: new DefaultLogger('WARN'),
  });
  const out = path.join(root, 'dist', 'workflow-bundle.js');
  // Whole or not at all: a worker starting meanwhile reads the previous bundle, never half of this one.
  writeFileSync(`${out}.tmp`, code);
  renameSync(`${out}.tmp`, out);
  console.log(`workflow bundle: ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
