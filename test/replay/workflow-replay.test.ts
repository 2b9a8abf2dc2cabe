/**
 * Replays recorded histories against the current workflow code: a change that would break
 * workflows already running (a reordered step, a new activity in the middle) fails here.
 * Record new histories with LIFELINE_RECORD_HISTORY=1 npm test -- workflow (backup-workflow, restore-workflow).
 */
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { installTemporalRuntime } from '../../src/temporal/runtime';

const dir = path.join(__dirname, 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

describe('replay of recorded workflow histories', () => {
  let workflowBundle: { code: string };

  before(async () => {
    installTemporalRuntime();
    workflowBundle = await bundleWorkflowCode({ workflowsPath: path.join(__dirname, '..', '..', 'workflows', 'index.ts'), logger: undefined });
  });

  it('has histories to replay', () => assert.ok(files.length > 0));

  for (const file of files) {
    it(`replays ${file} deterministically`, async () => {
      const history = historyFromJSON(JSON.parse(readFileSync(path.join(dir, file), 'utf8')));
      await Worker.runReplayHistory({ workflowBundle }, history, file);
    });
  }
});
