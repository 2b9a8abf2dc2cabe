import { parseArgs } from 'node:util';
import { ConfigError, LifelineError, UsageError, errorMessage } from '../errors';
import type { Command } from './command';
import { auditCommand } from './commands/audit';
import { backupCommand } from './commands/backup';
import { cleanupCommand } from './commands/cleanup';
import { decryptCommand } from './commands/decrypt';
import { drillCommand, drillsCommand } from './commands/drill';
import { approveCommand, cancelCommand } from './commands/decide';
import { holdCommand } from './commands/hold';
import { keysCommand } from './commands/keys';
import { listCommand } from './commands/list';
import { replicateCommand } from './commands/replicate';
import { reportCommand } from './commands/report';
import { restoreCommand } from './commands/restore';
import { restoresCommand } from './commands/restores';
import { scheduleCommand } from './commands/schedule';
import { statsCommand } from './commands/stats';
import { statusCommand } from './commands/status';
import { upCommand } from './commands/up';
import { verifyCommand } from './commands/verify';
import { workerCommand } from './commands/worker';

const COMMANDS: Command[] = [
  upCommand,
  workerCommand,
  scheduleCommand,
  backupCommand,
  listCommand,
  verifyCommand,
  replicateCommand,
  restoreCommand,
  restoresCommand,
  drillCommand,
  drillsCommand,
  approveCommand,
  cancelCommand,
  statusCommand,
  statsCommand,
  reportCommand,
  cleanupCommand,
  holdCommand,
  auditCommand,
  keysCommand,
  decryptCommand,
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
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`lifeline: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
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

if (require.main === module) {
  // A command whose work never settles (a stream that neither ends nor fails) must not look like success.
  process.exitCode = 1;
  process.once('beforeExit', () => process.stderr.write('lifeline: the command stopped before it finished (nothing left to wait on); treat its result as failed\n'));
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`lifeline: ${errorMessage(err)}\n`);
      process.exit(1);
    },
  );
}
