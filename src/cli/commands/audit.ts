import { userInfo } from 'node:os';
import { auditLogOf, type ChainCheck } from '../../audit/audit-log';
import { headsInTemporalHistory } from '../../audit/temporal-heads';
import { UsageError } from '../../errors';
import { createClient } from '../../temporal/client';
import type { Command } from '../command';
import { config, jsonOption } from '../common';
import { printJson } from '../output';

function describeCheck(file: string, check: ChainCheck): string {
  const anchors = check.anchors.map((a) => `${a.destination}: ${a.checked} anchor(s)${a.newestSeq ? `, newest seq ${a.newestSeq}` : ''}${a.error ? ' (unreadable)' : ''}`);
  const out = check.ok
    ? [`OK: ${check.entries} entries in ${file}, every MAC and the sequence check out${check.head ? ` (head seq ${check.head.seq}, ${check.head.mac.slice(0, 16)}…)` : ''}`]
    : [`BROKEN: ${file} line ${check.broken!.line}: ${check.broken!.reason}`];
  if (check.keyedFromSeq !== undefined && check.keyedFromSeq > 1) out.push(`  lines 1–${check.keyedFromSeq - 1} predate the keyed chain (SHA-256 only); its first keyed line pins them`);
  if (anchors.length) out.push(`  anchors: ${anchors.join('; ')}`);
  if (check.recordedHeads !== undefined) out.push(`  heads in Temporal history: ${check.recordedHeads} compared`);
  for (const w of check.warnings) out.push(`  warning: ${w}`);
  return out.join('\n') + '\n';
}

export const auditCommand: Command = {
  name: 'audit',
  summary: 'check the audit trail: every line keyed (HMAC) and chained, and its head against the anchors offsite (an edited, removed or cut-off line is named)',
  usage: 'lifeline audit verify [--temporal-days N] [--json] | lifeline audit reset --confirm-lost-history',
  details:
    '  --temporal-days N  also compare the heads the audit step returned to the workflows of the last N days\n' +
    '                     (kept in Temporal history; needs Temporal reachable)\n' +
    '  reset --confirm-lost-history\n' +
    '                     only when audit.jsonl and audit-key.json are lost and no copy exists: starts a new\n' +
    '                     chain; the loss is recorded offsite (write-once) and named by every `audit verify`',
  options: { ...jsonOption, 'temporal-days': { type: 'string' }, 'confirm-lost-history': { type: 'boolean' } },
  allowPositionals: true,
  async run({ values, positionals }) {
    if (positionals[0] === 'reset') {
      if (!values['confirm-lost-history']) throw new UsageError('`lifeline audit reset` needs --confirm-lost-history: restore audit.jsonl and audit-key.json from a copy instead if one exists');
      const { entry, lost } = await auditLogOf(config()).reset(userInfo().username);
      if (values.json) printJson({ entry, lost });
      else process.stdout.write(`new audit chain started (seq ${entry.seq}); recorded offsite as lost: ${lost.map((c) => `audit key ${c.auditKey} seq ${c.fromSeq}–${c.toSeq} (newest ${c.newest})`).join('; ') || 'nothing new'}\n`);
      return 0;
    }
    if (positionals[0] !== 'verify') throw new UsageError('say `lifeline audit verify` or `lifeline audit reset --confirm-lost-history`');
    const cfg = config();
    const log = auditLogOf(cfg);
    const days = values['temporal-days'];
    if (days !== undefined && !/^[1-9]\d{0,3}$/.test(String(days))) throw new UsageError(`--temporal-days ${String(days)}: say a whole number of days from 1 to 9999`);
    let recordedHeads;
    if (days !== undefined) {
      const client = await createClient(cfg);
      try {
        recordedHeads = await headsInTemporalHistory(client, cfg.temporal.taskQueue, Number(days));
      } finally {
        await client.connection.close();
      }
    }
    const check = await log.verify({ recordedHeads });
    if (values.json) printJson({ file: log.file, ...check });
    else process.stdout.write(describeCheck(log.file, check));
    return check.ok ? 0 : 1;
  },
};
