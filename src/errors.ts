/**
 * Typed errors. Every error Lifeline raises on purpose carries a stable `code` (it becomes the
 * Temporal failure type), whether a retry can help, and a hint that tells the operator what to do.
 */
import { redact, redactDeep } from './security/redact';

export interface LifelineErrorOptions {
  retryable?: boolean;
  hint?: string;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class LifelineError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly hint?: string;
  readonly details?: Record<string, unknown>;

  constructor(code: string, message: string, options: LifelineErrorOptions = {}) {
    // Messages travel to Temporal, logs and alert channels: never with a password or a known secret.
    super(redact(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = code;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.hint = options.hint === undefined ? undefined : redact(options.hint);
    this.details = redactDeep(options.details);
  }

  /** Message and hint together, as shown to an operator. */
  describe(): string {
    return this.hint ? `${this.message}\n  → ${this.hint}` : this.message;
  }
}

/** A command line that cannot be understood: exit code 2. */
export class UsageError extends LifelineError {
  constructor(message: string, hint?: string) {
    super('UsageError', message, { hint });
  }
}

/** Invalid configuration: lists every bad field at once. */
export class ConfigError extends LifelineError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(
      'ConfigError',
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  - ${p}`).join('\n'),
      { hint: 'fix the values above (environment variables or lifeline.config.*) and start again' },
    );
    this.problems = problems.map(redact);
  }
}

/** Data that fails an integrity check: a changed, truncated or reordered backup, or the wrong key. */
export class IntegrityError extends LifelineError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super('IntegrityError', message, {
      hint: hint ?? 'the backup is damaged or was written with another key; restore from another copy or backup',
      details,
    });
  }
}

export class WrongKeyError extends LifelineError {
  constructor(message: string, hint?: string) {
    super('WrongKey', message, { hint: hint ?? 'use the key file or KMS key the backup was written with' });
  }
}

/** The message of the innermost cause: a workflow failure wraps the activity failure that says why. */
export function rootCauseMessage(err: unknown): string {
  let current = err as { message?: string; cause?: unknown } | undefined;
  while (current?.cause && typeof current.cause === 'object') current = current.cause as typeof current;
  return redact(current?.message ?? String(err));
}

/** What an operator is shown of any error (a library's own message may quote a URL with its password). */
export function errorMessage(err: unknown): string {
  if (err instanceof LifelineError) return err.describe();
  return redact(err instanceof Error ? err.message : String(err));
}
