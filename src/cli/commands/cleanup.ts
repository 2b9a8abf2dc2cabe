import { userInfo } from 'node:os';
import { timestamp } from '../../catalog/naming';
import { UsageError } from '../../errors';
import { planTarget, retentionTargets, type TargetPlan } from '../../retention/apply';
import { createClient } from '../../temporal/client';
import {
  RETENTION_WORKFLOW_TYPE,
  retentionPlanQuery,
  retentionStateQuery,
  type RetentionWorkflowInput,
  type RetentionWorkflowResult,
} from '../../../workflows/definitions';
import { waitFor } from '../../infra/net';
import type { Command } from '../command';
import { config, dbOption, jsonOption, pickDatabase } from '../common';
import { printJson, table } from '../output';
import { resultOf, startWorkflow } from '../start-workflow';

function parseDays(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)d?$/.exec(value.trim());
  if (!m) throw new UsageError(`--older-than ${value}: give a number of days, like 30d`);
  return Number(m[1]);
}

function describePlans(plans: TargetPlan[]): string {
  const rows = plans.flatMap((p) => [
    ...p.plan.delete.map((d) => [p.database, p.storage, d.id, 'DELETE', d.rule]),
    ...p.plan.keep.map((k) => [p.database, p.storage, k.id, 'keep', k.reasons.join('; ')]),
    // Plans made before manifests were authenticated have no `untrusted`.
    ...(p.untrusted ?? []).map((u) => [p.database, p.storage, u.id, 'left alone', `manifest not authentic: ${u.error}`]),
  ]);
  const summary = plans
    .map((p) => `${p.database} in ${p.storage}: ${p.plan.delete.length} of ${p.total} to delete (keep-for-days ${p.keepDays})${p.needsApproval && p.plan.delete.length ? ', needs approval' : ''}`)
    .join('\n');
  return (rows.length ? table(['DATABASE', 'STORAGE', 'BACKUP', 'ACTION', 'RULE / WHY KEPT'], rows) + '\n' : '') + summary + '\n';
}

export const cleanupCommand: Command = {
  name: 'cleanup',
  summary: 'apply the retention policy now (runs the retention workflow); --dry-run prints the plan and changes nothing',
  usage: 'lifeline cleanup [--dry-run] [--older-than 30d] [--db NAME] [--wait] [--json]',
  details: `  --dry-run        compute and print the plan: what goes, from where, under which rule; what stays and why
  --older-than N   keep-for-days for this run instead of each database's (the other rules and the
                   guarantees still hold: newest verified backup, minimum count, holds, running restores)
  --wait           wait for the result (a plan over the approval threshold waits for \`lifeline approve\`)`,
  options: { ...dbOption, ...jsonOption, 'dry-run': { type: 'boolean' }, 'older-than': { type: 'string' }, wait: { type: 'boolean' } },
  async run({ values }) {
    const cfg = config();
    const olderThanDays = parseDays(values['older-than'] as string | undefined);
    const databases = values.db ? [pickDatabase(cfg, values.db as string).name] : undefined;
    if (values['dry-run']) {
      // Planned here, without Temporal: running restores are not known, so this may list one of their backups.
      const plans = [];
      for (const target of retentionTargets(cfg, databases)) plans.push(await planTarget(cfg, target, { inUse: [], olderThanDays }));
      if (values.json) printJson(plans);
      else process.stdout.write(describePlans(plans) + 'Dry run: nothing was deleted.\n');
      return 0;
    }
    const input: RetentionWorkflowInput = { databases, olderThanDays, requestedBy: userInfo().username };
    const started = await startWorkflow(await createClient(cfg), cfg, RETENTION_WORKFLOW_TYPE, `lifeline-cleanup-${timestamp(new Date())}`, input);
    let state = 'PLANNING';
    await waitFor('the cleanup plan', async () => {
      state = await started.handle.query(retentionStateQuery).catch(() => 'DONE');
      return state !== 'PLANNING';
    }, 3600_000);
    const plans = (await started.handle.query(retentionPlanQuery).catch(() => undefined)) ?? [];
    if (!values.json) {
      process.stdout.write(`Cleanup: workflow ${started.workflowId}\n  ${started.link}\n${describePlans(plans)}`);
      if (state === 'WAITING_APPROVAL') {
        process.stdout.write(`Waiting for approval:\n  lifeline approve ${started.workflowId} --by NAME\n  lifeline cancel ${started.workflowId} --by NAME --reason TEXT\n`);
      }
    }
    if (!values.wait) {
      if (values.json) printJson({ workflowId: started.workflowId, state, plans });
      return 0;
    }
    const result = await resultOf<RetentionWorkflowResult>(started, 'CleanupFailed', 'cleanup');
    if (values.json) printJson(result);
    else {
      const ok = result.deleted.filter((d) => d.ok).length;
      process.stdout.write(`${result.outcome}: ${ok} deleted${result.deleted.length > ok ? `, ${result.deleted.length - ok} failed` : ''}.\n`);
    }
    return result.deleted.every((d) => d.ok) ? 0 : 1;
  },
};
