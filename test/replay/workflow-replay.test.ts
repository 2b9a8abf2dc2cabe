/**
 * Replays recorded histories against the current workflow code: a change that would break
 * workflows already running (a reordered step, a new activity in the middle) fails here.
 * Record new histories with LIFELINE_RECORD_HISTORY=1 npm test -- workflow (backup-workflow, restore-workflow):
 * their payloads are then encrypted with the fixture codec key in codec-key.json (test/harness/fixtures.ts
 * imports it into the recording test's repository), which this test decodes with, through the same data
 * converter (codec and failure converter) as a worker. Histories from before payload encryption are plain
 * and pass through the codec. (A key rotation makes a new, random codec key: re-recording key-rotation.json
 * would encrypt its later payloads with a key this test does not have; that history is kept as recorded.)
 */
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fixedCodecKeys } from '../../src/crypto/codec-keys';
import { dataConverterWith, FAILURE_CONVERTER_PATH } from '../../src/temporal/data-converter';
import { installTemporalRuntime } from '../../src/temporal/runtime';
import { replayCodecKey } from '../harness/fixtures';

const dir = path.join(__dirname, 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
const dataConverter = dataConverterWith(fixedCodecKeys([replayCodecKey()]));

describe('replay of recorded workflow histories', () => {
  let workflowBundle: { code: string };

  before(async () => {
    installTemporalRuntime();
    workflowBundle = await bundleWorkflowCode({
      workflowsPath: path.join(__dirname, '..', '..', 'workflows', 'index.ts'),
      failureConverterPath: FAILURE_CONVERTER_PATH,
      logger: undefined,
    });
  });

  it('has histories to replay, encoded ones among them', () => {
    assert.ok(files.length > 0);
    assert.ok(
      files.some((f) => readFileSync(path.join(dir, f), 'utf8').includes(Buffer.from('binary/encrypted').toString('base64'))),
      'no history recorded with the payload codec',
    );
  });

  for (const file of files) {
    it(`replays ${file} deterministically`, async () => {
      const history = historyFromJSON(JSON.parse(readFileSync(path.join(dir, file), 'utf8')));
      await Worker.runReplayHistory({ workflowBundle, dataConverter }, history, file);
    });
  }
});
