import type { Client } from '@temporalio/client';
import type { LifelineConfig } from '../../config/config';
import { userInfo } from 'node:os';
import { BACKUP_TYPES, timestamp, type BackupType } from '../../catalog/naming';
import { UsageError } from '../../errors';
import { createClient } from '../../temporal/client';
import { decodePayload } from '../../temporal/data-converter';
import {
  BACKUP_WORKFLOW_TYPE,
  progressQuery,
  type BackupWorkflowInput,
  type BackupWorkflowResult,
} from '../../../workflows/definitions';
import type { Command } from '../command';
import { resultOf, startWorkflow, type StartedWorkflow } from '../start-workflow';
import { config, dbOption, jsonOption, pickDatabase } from '../common';
import { formatBytes, formatDuration, printJson } from '../output';

interface HeartbeatProgress {
  phase?: string;
  rawBytes?: number;
  storedBytes?: number;
  bytesRead?: number;
}

/** Starts the backup workflow for one database; only its name goes to Temporal. */
export function startBackup(client: Client, cfg: LifelineConfig, database: string, type: BackupType): Promise<StartedWorkflow> {
  const input: BackupWorkflowInput = { database, type, trigger: `manual:${userInfo().username}` };
  return startWorkflow(client, cfg, BACKUP_WORKFLOW_TYPE, `lifeline-backup-${database}-manual-${timestamp(new Date())}`, input, database);
}

/** Waits for the result; on a terminal, shows phase, bytes and rate from the heartbeats. */
export async function waitForBackup(started: StartedWorkflow, options: { live: boolean }): Promise<BackupWorkflowResult> {
  const { handle } = started;
  const begin = Date.now();
  const ticker = options.live
    ? setInterval(async () => {
        try {
          const [desc, progress] = await Promise.all([handle.describe(), handle.query(progressQuery)]);
          // Heartbeat details are encrypted by the payload codec: decoded as the client decodes results.
          const details = (await decodePayload<HeartbeatProgress>(handle.client, desc.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0])) ?? {};
          const bytes = details.rawBytes ?? details.bytesRead ?? 0;
          const seconds = (Date.now() - begin) / 1000;
          process.stderr.write(
            `\r  ${progress.phase.padEnd(11)} ${formatBytes(bytes).padStart(10)}  ${formatBytes(bytes / Math.max(seconds, 0.001)).padStart(10)}/s  ${formatDuration(Date.now() - begin)}   `,
          );
        } catch {
          /* progress is best effort */
        }
      }, 1000)
    : undefined;
  try {
    return await resultOf<BackupWorkflowResult>(started, 'BackupFailed', 'backup');
  } finally {
    if (ticker) clearInterval(ticker);
    if (options.live) process.stderr.write('\n');
  }
}

export function describeResult(result: BackupWorkflowResult): string {
  return (
    `Backup ${result.backupId} verified in ${formatDuration(result.durationMs)}\n` +
    `  dump ${formatBytes(result.rawBytes)} → stored ${formatBytes(result.storedBytes)} (sha256 ${result.sha256.slice(0, 16)}…)\n` +
    `  ${result.location}\n`
  );
}

export const backupCommand: Command = {
  name: 'backup',
  summary: 'take a backup now (runs the backup workflow)',
  usage: 'lifeline backup [--db NAME] [--type full|schema-only|data-only] [--wait] [--json]',
  details: `  --db NAME     database to back up (default: the only configured one)
  --type TYPE   full (default), schema-only or data-only
  --wait        wait for the backup to be verified, showing progress
  --json        print the result as JSON (no progress output)`,
  options: { ...dbOption, ...jsonOption, type: { type: 'string' }, wait: { type: 'boolean' } },
  async run({ values }) {
    const cfg = config();
    const db = pickDatabase(cfg, values.db as string | undefined);
    const type = (values.type as string | undefined) ?? 'full';
    if (!(BACKUP_TYPES as readonly string[]).includes(type) || type === 'pre-restore') {
      throw new UsageError(`--type ${type}: must be full, schema-only or data-only`);
    }
    const client = await createClient(cfg);
    const started = await startBackup(client, cfg, db.name, type as BackupType);
    if (!values.wait) {
      if (values.json) printJson({ workflowId: started.workflowId, runId: started.handle.firstExecutionRunId, link: started.link });
      else process.stdout.write(`Started backup of ${db.name}: workflow ${started.workflowId}\n  ${started.link}\n`);
      return 0;
    }
    if (!values.json) process.stderr.write(`Backing up ${db.name} (workflow ${started.workflowId})\n  ${started.link}\n`);
    const result = await waitForBackup(started, { live: !values.json && process.stderr.isTTY });
    if (values.json) printJson(result);
    else process.stdout.write(describeResult(result));
    return 0;
  },
};
