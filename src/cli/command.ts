import type { ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** One `lifeline` command: its help text, its options, and what it does (returns the exit code). */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Lines explaining each option, shown by --help. */
  details?: string;
  options: OptionSpec;
  allowPositionals?: boolean;
  run(args: ParsedArgs): Promise<number>;
}
