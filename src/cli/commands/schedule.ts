import { UsageError } from '../../errors';
import { createClient } from '../../temporal/client';
import { applySchedules, backupScheduleId, drillScheduleId, KEY_ROTATION_SCHEDULE_ID, RETENTION_SCHEDULE_ID, RPO_WATCHDOG_SCHEDULE_ID } from '../../temporal/schedules';
import type { Command } from '../command';
import { config, jsonOption } from '../common';
import { printJson, table } from '../output';

export const scheduleCommand: Command = {
  name: 'schedule',
  summary: 'create or update the daily backup Schedules (apply), or show them (list)',
  usage: 'lifeline schedule apply|list [--json]',
  options: { ...jsonOption },
  allowPositionals: true,
  async run({ values, positionals }) {
    const [action] = positionals;
    if (action !== 'apply' && action !== 'list') throw new UsageError('say `lifeline schedule apply` or `lifeline schedule list`');
    const cfg = config();
    const client = await createClient(cfg);
    if (action === 'apply') {
      const changes = await applySchedules(client, cfg);
      if (values.json) printJson(changes);
      else for (const c of changes) process.stdout.write(`${c.change.padEnd(8)} ${c.scheduleId}\n`);
      return 0;
    }
    const describe = async (scheduleId: string, subject: string) => {
      try {
        const d = await client.schedule.getHandle(scheduleId).describe();
        return {
          scheduleId,
          subject,
          spec: d.spec.calendars?.map((c) => c.comment || JSON.stringify(c)).join(', ') ?? '',
          paused: d.state.paused,
          next: d.info.nextActionTimes[0]?.toISOString() ?? '',
          last: d.info.recentActions.at(-1)?.takenAt.toISOString() ?? '',
        };
      } catch {
        return { scheduleId, subject, spec: 'not applied (run `lifeline schedule apply`)', paused: false, next: '', last: '' };
      }
    };
    const rows = [];
    for (const db of cfg.databases) {
      rows.push(await describe(backupScheduleId(db.name), db.name));
      if (cfg.drillSchedule === 'on') for (const kind of ['quarterly', 'monthly'] as const) rows.push(await describe(drillScheduleId(db.name, kind), db.name));
    }
    if (cfg.retentionSchedule.kind !== 'off') rows.push(await describe(RETENTION_SCHEDULE_ID, 'retention'));
    rows.push(await describe(RPO_WATCHDOG_SCHEDULE_ID, 'RPO watchdog'));
    if (cfg.keyRotation !== 'off') rows.push(await describe(KEY_ROTATION_SCHEDULE_ID, 'master key'));
    if (values.json) printJson(rows);
    else
      process.stdout.write(
        table(['SCHEDULE', 'SPEC', 'PAUSED', 'NEXT RUN (UTC)', 'LAST RUN'], rows.map((r) => [r.scheduleId, r.spec, r.paused ? 'yes' : 'no', r.next, r.last])) + '\n',
      );
    return 0;
  },
};
