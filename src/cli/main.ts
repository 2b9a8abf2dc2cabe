import { parseArgs } from 'node:util';
import { ConfigError, LifelineError, UsageError, errorMessage } from '../errors';
import type { Command } from './command';

/**
 * Every command: its name and summary (all `lifeline --help` needs) and how to load it. A command's
 * module graph (the AWS SDK, the Temporal client, pg, the worker…) is loaded only when that command
 * runs, so `lifeline list` does not pay for `lifeline worker`'s. Each summary is the module's own
 * (test/unit/cli-commands.test.ts holds them together).
 */
export interface CommandEntry {
  name: string;
  summary: string;
  /** `require`, not `import()`: the sources run through tsx's CommonJS hook too (bin/lifeline.js). */
  load(): Command;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'up', summary: 'set up and run everything locally: Temporal, a demo database, a key, a worker, the schedules, one backup', load: () => (require('./commands/up') as typeof import('./commands/up')).upCommand },
  { name: 'worker', summary: 'run a worker: executes backup workflows and their steps until stopped (SIGINT/SIGTERM)', load: () => (require('./commands/worker') as typeof import('./commands/worker')).workerCommand },
  { name: 'codec-server', summary: 'serve the payload codec over HTTP, so the Web UI and `temporal --codec-endpoint` show decoded payloads', load: () => (require('./commands/codec-server') as typeof import('./commands/codec-server')).codecServerCommand },
  { name: 'schedule', summary: 'create or update the daily backup Schedules (apply), or show them (list)', load: () => (require('./commands/schedule') as typeof import('./commands/schedule')).scheduleCommand },
  { name: 'backup', summary: 'take a backup now (runs the backup workflow)', load: () => (require('./commands/backup') as typeof import('./commands/backup')).backupCommand },
  { name: 'list', summary: 'list verified backups, locally or in a destination (reads the storage itself; no Temporal needed)', load: () => (require('./commands/list') as typeof import('./commands/list')).listCommand },
  { name: 'verify', summary: 'read backups back: checksum, decryption, decompression and pg_restore --list', load: () => (require('./commands/verify') as typeof import('./commands/verify')).verifyCommand },
  { name: 'replicate', summary: 'copy backups to destinations that lack them (runs the replication workflow)', load: () => (require('./commands/replicate') as typeof import('./commands/replicate')).replicateCommand },
  { name: 'restore', summary: 'ask for a restore: shows the plan, then waits for approval (lifeline approve) unless forced', load: () => (require('./commands/restore') as typeof import('./commands/restore')).restoreCommand },
  { name: 'restores', summary: 'list restores waiting for a decision, with their plans', load: () => (require('./commands/restores') as typeof import('./commands/restores')).restoresCommand },
  { name: 'drill', summary: 'run a disaster-recovery drill now: newest offsite backup → key → scratch database → checks; RTO and RPO', load: () => (require('./commands/drill') as typeof import('./commands/drill')).drillCommand },
  { name: 'drills', summary: 'past drills with their results, RTO and RPO (from the reports in the repository)', load: () => (require('./commands/drill') as typeof import('./commands/drill')).drillsCommand },
  { name: 'approve', summary: 'approve a waiting restore or cleanup (it starts at once); four eyes: not your own request for a production database', load: () => (require('./commands/decide') as typeof import('./commands/decide')).approveCommand },
  { name: 'cancel', summary: 'cancel a waiting restore or cleanup (nothing is changed)', load: () => (require('./commands/decide') as typeof import('./commands/decide')).cancelCommand },
  { name: 'status', summary: 'per database: last run and its result, last verified backup, RPO against its target, next run, last drill, open alerts', load: () => (require('./commands/status') as typeof import('./commands/status')).statusCommand },
  { name: 'stats', summary: 'backup statistics over the last days: counts, success rate, sizes, durations, compression, trends', load: () => (require('./commands/stats') as typeof import('./commands/stats')).statsCommand },
  { name: 'report', summary: "the month's compliance report: backups, verifications, replications, restores, approvals, deletions, rotations, RPO/RTO, gaps, audit check", load: () => (require('./commands/report') as typeof import('./commands/report')).reportCommand },
  { name: 'cleanup', summary: 'apply the retention policy now (runs the retention workflow); --dry-run prints the plan and changes nothing', load: () => (require('./commands/cleanup') as typeof import('./commands/cleanup')).cleanupCommand },
  { name: 'hold', summary: 'put a backup under legal hold (retention never deletes it), or release it', load: () => (require('./commands/hold') as typeof import('./commands/hold')).holdCommand },
  { name: 'audit', summary: 'check the audit trail: every line keyed (HMAC) and chained, and its head against the anchors offsite (an edited, removed or cut-off line is named)', load: () => (require('./commands/audit') as typeof import('./commands/audit')).auditCommand },
  { name: 'keys', summary: 'master keys: create the local key file, rotate (re-wrap every backup), show which backups use which key', load: () => (require('./commands/keys') as typeof import('./commands/keys')).keysCommand },
  { name: 'decrypt', summary: 'turn a backup (file or s3:// URL) back into a plain pg_dump archive, with only the backup, its manifest and the key', load: () => (require('./commands/decrypt') as typeof import('./commands/decrypt')).decryptCommand },
];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return (
    'lifeline: durable PostgreSQL backup and restore, orchestrated by Temporal\n\n' +
    'Usage: lifeline <command> [options]   (lifeline <command> --help for details)\n\nCommands:\n' +
    COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n') +
    '\n\nExit codes: 0 success, 1 failure, 2 usage error.\n'
  );
}

function commandHelp(c: Command): string {
  return `${c.summary}\n\nUsage: ${c.usage}\n${c.details ? `\n${c.details}\n` : ''}`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help());
    return name ? 0 : 2;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`lifeline: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  const command = entry.load();
  try {
    const parsed = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: command.allowPositionals ?? false,
      strict: true,
    });
    if (parsed.values.help) {
      process.stdout.write(commandHelp(command));
      return 0;
    }
    return await command.run({ values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals });
  } catch (err) {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    if (usage) {
      process.stderr.write(`lifeline ${name}: ${err instanceof Error ? err.message : String(err)}\nUsage: ${command.usage}\n`);
      return 2;
    }
    process.stderr.write(`lifeline ${name}: ${errorMessage(err)}\n`);
    if (!(err instanceof LifelineError) && !(err instanceof ConfigError) && process.env.LOG_LEVEL === 'debug') {
      process.stderr.write(`${(err as Error).stack}\n`);
    }
    return 1;
  }
}

/** Runs `lifeline` as a program (bin/lifeline.js, `npm start`, `npm run lifeline`) and exits with its code. */
export function run(argv: string[] = process.argv.slice(2)): void {
  // A command whose work never settles (a stream that neither ends nor fails) must not look like success.
  process.exitCode = 1;
  process.once('beforeExit', () => process.stderr.write('lifeline: the command stopped before it finished (nothing left to wait on); treat its result as failed\n'));
  main(argv).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`lifeline: ${errorMessage(err)}\n`);
      process.exit(1);
    },
  );
}

if (require.main === module) run();
