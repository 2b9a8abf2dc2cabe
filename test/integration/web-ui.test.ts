/**
 * The Temporal Web UI in a real browser (Debian's Chromium driven by playwright-core): a dev server
 * of its own with the UI pointed at Lifeline's codec server (`--ui-codec-endpoint`), a worker and a
 * client with the codec, one real backup. The workflow's page shows its decoded input; with the codec
 * server gone, the same page shows only the encrypted payload.
 */
import { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startConfiguredCodecServer } from '../../src/cli/commands/codec-server';
import { freePort } from '../../src/infra/net';
import { startTemporalDevServer, type DevServer } from '../../src/infra/temporal-dev-server';
import { ensureChromium, ensureTemporalCli } from '../../src/infra/tools';
import { connectTemporal } from '../../src/temporal/client';
import type { RunningCodecServer } from '../../src/temporal/codec-server';
import { dataConverterFor } from '../../src/temporal/data-converter';
import { BACKUP_WORKFLOW_TYPE, BackupDatabase, type BackupWorkflowInput, type BackupWorkflowResult } from '../../workflows/definitions';
import { seededDatabase, testConfig, type TestSetup } from '../harness/fixtures';
import { testServers } from '../harness/servers';
import { runWorker } from '../harness/worker';

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

describe('Web UI with the codec server, in Chromium', () => {
  let devServer: DevServer;
  let codec: RunningCodecServer | undefined;
  let setup: TestSetup;
  let client: Client;
  let stopWorker: () => Promise<void>;
  let browser: Browser;
  let uiPort: number;
  let workflowId: string;
  let result: BackupWorkflowResult;
  /** Only in the workflow's input payload: not its id, not a search attribute, not the task queue. */
  const trigger = `grace-hopper-${randomBytes(5).toString('hex')}`;

  before(async () => {
    const say = (l: string) => console.log(l);
    const [servers, cliPath, chromiumPath] = await Promise.all([testServers(), ensureTemporalCli(say), ensureChromium(say)]);
    const source = await seededDatabase(servers, 'webui_source', { users: 20, transactions: 200 });
    uiPort = await freePort();
    const temporalPort = await freePort();
    setup = await testConfig(servers, 'webui', [{ name: 'webui_source', url: source.url }], {
      env: { TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`, LIFELINE_CODEC_CORS_ORIGINS: `http://127.0.0.1:${uiPort}` },
    });
    codec = await startConfiguredCodecServer(setup.config, '127.0.0.1:0');
    const [dev, launched] = await Promise.all([
      startTemporalDevServer({
        cliPath,
        dbFile: path.join(setup.dir, 'temporal', 'temporal.db'),
        port: temporalPort,
        uiPort,
        uiCodecEndpoint: codec.url,
        logFile: path.join(setup.dir, 'temporal', 'server.log'),
      }),
      chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_FLAGS }),
    ]);
    devServer = dev;
    browser = launched;
    client = new Client({ connection: await connectTemporal(setup.config.temporal.address), dataConverter: dataConverterFor(setup.config) });
    stopWorker = await runWorker(setup.config);
  });

  after(async () => {
    await browser?.close();
    await stopWorker?.();
    await client?.connection.close();
    await codec?.close();
    await devServer?.stop();
  });

  type Doc = { document: { body: { innerText: string } } };
  const bodyText = (page: Page) => page.evaluate(() => (globalThis as unknown as Doc).document.body.innerText);

  /**
   * Opens the workflow's page in a fresh browser context. The UI renders the payloads as stored first
   * (`binary/encrypted`), then replaces them with what the codec server returns: `until` says what the
   * page must show before it is read (the decoded value, or the codec request having failed).
   */
  async function workflowPage(until: 'decoded' | 'codec-failed'): Promise<{ page: Page; text: string; seen: string[] }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    // What the page asked the codec server, for the failure message.
    const seen: string[] = [];
    let failed!: () => void;
    const codecFailed = new Promise<void>((resolve) => (failed = resolve));
    page.on('response', (r) => /\/(en|de)code$/.test(r.url()) && seen.push(`${r.request().method()} ${r.url()} → ${r.status()}`));
    page.on('requestfailed', (r) => {
      if (!/\/(en|de)code$/.test(r.url())) return;
      seen.push(`${r.method()} ${r.url()} failed: ${r.failure()?.errorText}`);
      failed();
    });
    await page.goto(`http://127.0.0.1:${uiPort}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
    try {
      if (until === 'decoded') {
        await page.waitForFunction((needle) => (globalThis as unknown as Doc).document.body.innerText.includes(needle), trigger, { timeout: 30_000 });
      } else {
        // The sealed payload is on the page, the UI's decode request failed, and nothing is still loading.
        await page.waitForFunction(() => (globalThis as unknown as Doc).document.body.innerText.includes('YmluYXJ5L2VuY3J5cHRlZA'), undefined, { timeout: 30_000 });
        await codecFailed;
        await page.waitForLoadState('networkidle');
        await page.waitForTimeout(1000);
      }
    } catch (err) {
      const text = await bodyText(page);
      throw new Error(`${(err as Error).message}\ncodec requests:\n${seen.join('\n')}\nthe page read:\n${text.slice(0, 3000)}`);
    }
    return { page, seen, text: await bodyText(page) };
  }

  it('shows a backup workflow\'s decoded input and result on its page', async () => {
    workflowId = `webui-backup-${Date.now()}`;
    const input: BackupWorkflowInput = { database: 'webui_source', trigger };
    const handle = await client.workflow.start(BACKUP_WORKFLOW_TYPE, {
      taskQueue: setup.config.temporal.taskQueue,
      workflowId,
      args: [input],
      typedSearchAttributes: [{ key: BackupDatabase, value: input.database }],
    });
    result = (await handle.result()) as BackupWorkflowResult;

    const { page, text, seen } = await workflowPage('decoded');
    try {
      assert.ok(text.includes(`"trigger": "${trigger}"`), `the decoded input is shown as JSON; the page read:\n${text.slice(0, 3000)}`);
      assert.ok(text.includes(`"sha256": "${result.sha256}"`), 'the decoded result is shown');
      assert.ok(seen.some((s) => /POST .*\/decode → 200/.test(s)), `the browser asked the codec server: ${seen.join('; ')}`);
    } finally {
      await page.context().close();
    }
  });

  it('shows neither without the codec server', async () => {
    await codec!.close();
    codec = undefined;
    const { page, text } = await workflowPage('codec-failed');
    try {
      assert.ok(!text.includes(trigger), `the input must stay sealed; the page read:\n${text.slice(0, 4000)}`);
      assert.ok(!text.includes(result.sha256));
    } finally {
      await page.context().close();
    }
  });
});
