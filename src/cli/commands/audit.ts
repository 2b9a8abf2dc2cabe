import { auditLogOf } from '../../audit/audit-log';
import { UsageError } from '../../errors';
import type { Command } from '../command';
import { config, jsonOption } from '../common';
import { printJson } from '../output';

export const auditCommand: Command = {
  name: 'audit',
  summary: 'check the audit trail: every line chained to the one before (an edited or removed line is named)',
  usage: 'lifeline audit verify [--json]',
  options: { ...jsonOption },
  allowPositionals: true,
  async run({ values, positionals }) {
    if (positionals[0] !== 'verify') throw new UsageError('say `lifeline audit verify`');
    const log = auditLogOf(config());
    const check = await log.verify();
    if (values.json) printJson({ file: log.file, ...check });
    else if (check.ok) process.stdout.write(`OK: ${check.entries} entries in ${log.file}, chain intact (last hash ${check.lastHash.slice(0, 16)}…)\n`);
    else process.stdout.write(`BROKEN: ${log.file} line ${check.broken!.line}: ${check.broken!.reason}\n`);
    return check.ok ? 0 : 1;
  },
};
