import path from 'node:path';
import { userInfo } from 'node:os';
import { timestamp } from '../../catalog/naming';
import { loadConfig } from '../../config/load';
import { createKeyFile, keyringDir, LocalKeyFileProvider } from '../../crypto/keys/local-key-file';
import { UsageError } from '../../errors';
import { keyUsage } from '../../rotation/rewrap';
import { createClient } from '../../temporal/client';
import { KEY_ROTATION_WORKFLOW_TYPE, type KeyRotationWorkflowInput, type KeyRotationWorkflowResult } from '../../../workflows/definitions';
import type { Command } from '../command';
import { resultOf, startWorkflow } from '../start-workflow';
import { config, jsonOption } from '../common';
import { formatDuration, printJson, table } from '../output';

async function init(file: string | undefined): Promise<number> {
  // A key can be made before any database is configured.
  const target = file ? path.resolve(file) : loadConfig({ requireDatabases: false }).encryption.keyFile;
  const keyId = await createKeyFile(target);
  process.stdout.write(
    `Created ${target} (mode 0600), key id ${keyId}.\n` +
      'Keep a copy of this file somewhere other than the backups: without it they cannot be decrypted.\n',
  );
  return 0;
}

async function rotate(values: Record<string, unknown>): Promise<number> {
  const cfg = config();
  const input: KeyRotationWorkflowInput = { requestedBy: userInfo().username };
  const started = await startWorkflow(await createClient(cfg), cfg, KEY_ROTATION_WORKFLOW_TYPE, `lifeline-key-rotation-manual-${timestamp(new Date())}`, input);
  if (!values.wait) {
    if (values.json) printJson({ workflowId: started.workflowId, link: started.link });
    else process.stdout.write(`Started key rotation: workflow ${started.workflowId}\n  ${started.link}\n`);
    return 0;
  }
  const result = await resultOf<KeyRotationWorkflowResult>(started, 'KeyRotationFailed', 'key rotation');
  if (values.json) printJson(result);
  else {
    process.stdout.write(
      `New master key ${result.keyId} (was ${result.previousKeyId}).\n` +
        `  ${result.rewrapped} backup keys re-wrapped, ${result.alreadyCurrent} already current, in ${formatDuration(result.durationMs)}.\n` +
        Object.entries(result.byPlace).map(([place, n]) => `  ${place}: ${n}\n`).join(''),
    );
  }
  return 0;
}

async function status(values: Record<string, unknown>): Promise<number> {
  const cfg = config();
  const usage = await keyUsage(cfg);
  const kept = await new LocalKeyFileProvider(cfg.encryption.keyFile).keptKeyIds();
  if (values.json) {
    printJson({ ...usage, localKeyring: { dir: keyringDir(cfg.encryption.keyFile), keyIds: kept } });
    return 0;
  }
  const rows = usage.keys.map((k) => {
    const count = Object.values(k.backups).reduce((n, ids) => n + ids.length, 0);
    const where = Object.entries(k.backups).map(([place, ids]) => `${place}: ${ids.length}`).join(', ');
    const state = k.current ? 'current (new backups)' : count ? 'still needed' : 'unused: can be retired';
    return [k.keyId, k.provider, state, String(count), where];
  });
  for (const id of kept) {
    if (!usage.keys.some((k) => k.keyId === id)) rows.push([id, 'local', 'unused: can be retired', '0', `kept in ${keyringDir(cfg.encryption.keyFile)}`]);
  }
  process.stdout.write(table(['KEY', 'PROVIDER', 'STATE', 'BACKUPS', 'WHERE'], rows) + '\n');
  return 0;
}

export const keysCommand: Command = {
  name: 'keys',
  summary: 'master keys: create the local key file, rotate (re-wrap every backup), show which backups use which key',
  usage: 'lifeline keys init [--file PATH] | keys rotate [--wait] [--json] | keys status [--json]',
  details: `  init          create the local master key file (default path: BACKUP_ENCRYPTION_KEY)
  rotate        run the key rotation workflow: a new master key (local file, or a new KMS key behind
                the BACKUP_KMS_KEY_ID alias) for new backups, and every backup's data key re-wrapped
                under it without re-encrypting data; earlier keys stay usable
  status        each master key, and the backups (per storage) it opens`,
  options: { ...jsonOption, file: { type: 'string' }, wait: { type: 'boolean' } },
  allowPositionals: true,
  async run({ values, positionals }) {
    const [action] = positionals;
    if (action === 'init') return init(values.file as string | undefined);
    if (action === 'rotate') return rotate(values);
    if (action === 'status') return status(values);
    throw new UsageError(`say \`lifeline keys init\`, \`lifeline keys rotate\` or \`lifeline keys status\`${action ? ` (not "${action}")` : ''}`);
  },
};
