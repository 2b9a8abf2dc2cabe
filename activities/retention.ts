import { Context } from '@temporalio/activity';
import { auditLogOf } from '../src/audit/audit-log';
import { Catalog } from '../src/catalog/catalog';
import { findDatabase, type LifelineConfig } from '../src/config/config';
import { errorMessage } from '../src/errors';
import { deleteBackup, planTarget, retentionTargets, type RetentionTarget, type TargetPlan } from '../src/retention/apply';
import { storageNamed } from '../src/backup/repository';
import { createClient } from '../src/temporal/client';
import { planQuery, RESTORE_WORKFLOW_TYPE, type RetentionDeletion } from '../workflows/definitions';
import { failuresTranslated, owningWorkflow } from './errors';

export function createRetentionActivities(config: LifelineConfig) {
  return {
    retentionTargets: failuresTranslated(async (databases: string[]): Promise<RetentionTarget[]> => retentionTargets(config, databases)),

    /** Backup ids that running restores use (asked of Temporal: their plans name them). */
    backupsInUse: failuresTranslated(async (): Promise<string[]> => {
      const client = await createClient(config);
      try {
        const ids: string[] = [];
        for await (const run of client.workflow.list({ query: `WorkflowType = "${RESTORE_WORKFLOW_TYPE}" AND ExecutionStatus = "Running"` })) {
          const plan = await client.workflow.getHandle(run.workflowId, run.runId).query(planQuery).catch(() => undefined);
          if (plan) ids.push(plan.backupId);
        }
        return ids;
      } finally {
        await client.connection.close();
      }
    }),

    planRetentionFor: failuresTranslated(
      async (target: RetentionTarget, options: { inUse: string[]; olderThanDays?: number }): Promise<TargetPlan> => planTarget(config, target, options),
    ),

    /** Deletes each backup (manifest first) and records it, with its rule, in the audit trail. */
    deleteBackups: failuresTranslated(
      async (target: RetentionTarget, backups: Array<{ id: string; rule: string }>, actor: string): Promise<RetentionDeletion[]> => {
        const ctx = Context.current();
        const audit = auditLogOf(config);
        const storage = storageNamed(config, findDatabase(config, target.database), target.storage);
        const catalog = new Catalog(storage);
        const out: RetentionDeletion[] = [];
        for (const [i, b] of backups.entries()) {
          const manifest = await catalog.find(b.id);
          try {
            const removed = await deleteBackup(config, target, b.id);
            out.push({ ...target, backupId: b.id, rule: b.rule, ok: true });
            if (removed.length) {
              await audit.append({
                eventId: `${owningWorkflow()?.workflowId ?? 'direct'}:delete:${target.storage}:${b.id}`,
                actor,
                action: 'deletion',
                status: 'deleted',
                database: target.database,
                backupId: b.id,
                sizeBytes: manifest?.sizes.storedBytes,
                location: storage.describe(manifest?.object.key ?? `${target.database}/${b.id}`),
                checksum: manifest?.sha256,
                details: { rule: b.rule, storage: target.storage },
              });
            }
          } catch (err) {
            out.push({ ...target, backupId: b.id, rule: b.rule, ok: false, error: errorMessage(err) });
          }
          ctx.heartbeat({ done: i + 1, of: backups.length });
        }
        return out;
      },
    ),
  };
}
