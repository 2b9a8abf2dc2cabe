import { userInfo } from 'node:os';
import { parseBackupId, timestamp } from '../../catalog/naming';
import { findDestination } from '../../config/config';
import { UsageError } from '../../errors';
import { createClient } from '../../temporal/client';
import {
  REPLICATION_WORKFLOW_TYPE,
  type ReplicationWorkflowInput,
  type ReplicationWorkflowResult,
} from '../../../workflows/definitions';
import type { Command } from '../command';
import { resultOf, startWorkflow } from '../start-workflow';
import { config, dbOption, jsonOption, pickDatabase } from '../common';
import { formatBytes, formatDuration, printJson, table } from '../output';

export const replicateCommand: Command = {
  name: 'replicate',
  summary: 'copy backups to destinations that lack them (runs the replication workflow)',
  usage: 'lifeline replicate ID... | --missing [--db NAME] [--to DESTINATION] [--wait] [--json]',
  details: `  ID            backup ids to copy to every destination (or --to) that lacks them
  --missing     every verified backup of the database that a destination lacks
  --to NAME     only this destination (default: every configured one)
  --wait        wait and print what was copied`,
  options: { ...dbOption, ...jsonOption, missing: { type: 'boolean' }, to: { type: 'string' }, wait: { type: 'boolean' } },
  allowPositionals: true,
  async run({ values, positionals }) {
    const cfg = config();
    if (Boolean(values.missing) === positionals.length > 0) throw new UsageError('give backup IDs, or --missing');
    if (cfg.destinations.length === 0) {
      throw new UsageError('no destinations are configured', 'set BACKUP_S3_BUCKET (and BACKUP_S3_ENDPOINT for an S3-compatible server), BACKUP_ARCHIVE_DIR, or destinations in lifeline.config.yaml');
    }
    const to = values.to as string | undefined;
    if (to) findDestination(cfg, to);
    const databases = new Set(positionals.map((id) => parseBackupId(id)?.database ?? ''));
    if (databases.has('')) throw new UsageError(`not a backup id: ${positionals.find((id) => !parseBackupId(id))}`);
    if (databases.size > 1) throw new UsageError('give backups of one database at a time');
    const db = pickDatabase(cfg, (values.db as string | undefined) ?? [...databases][0]);
    const input: ReplicationWorkflowInput = {
      database: db.name,
      ...(values.missing ? { missing: true } : { backupIds: positionals }),
      ...(to && { destinations: [to] }),
      requestedBy: userInfo().username,
    };
    const started = await startWorkflow(await createClient(cfg), cfg, REPLICATION_WORKFLOW_TYPE, `lifeline-replicate-${db.name}-${timestamp(new Date())}`, input, db.name);
    if (!values.wait) {
      if (values.json) printJson({ workflowId: started.workflowId, link: started.link });
      else process.stdout.write(`Started replication of ${db.name}: workflow ${started.workflowId}\n  ${started.link}\n`);
      return 0;
    }
    const result = await resultOf<ReplicationWorkflowResult>(started, 'ReplicationFailed', 'replication');
    if (values.json) printJson(result);
    else if (result.outcomes.length === 0) process.stdout.write('Every destination already holds every backup.\n');
    else {
      process.stdout.write(
        table(
          ['BACKUP', 'DESTINATION', 'RESULT', 'SIZE', 'TIME'],
          result.outcomes.map((o) => [o.backupId, o.destination, o.status === 'failed' ? `FAILED: ${o.error}` : o.status, o.bytes ? formatBytes(o.bytes) : '', o.durationMs ? formatDuration(o.durationMs) : '']),
        ) + '\n',
      );
    }
    return result.failed ? 1 : 0;
  },
};
