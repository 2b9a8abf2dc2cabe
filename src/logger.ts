import pino from 'pino';
import { redact } from './security/redact';

/**
 * Structured logs on stderr, so stdout stays for command output (and --json). Every line is
 * redacted as written (URL passwords, `password=`, known secrets), whatever object it came from.
 */
export const logger = pino(
  {
    level: process.env.LOG_LEVEL ?? 'info',
    base: undefined,
    redact: ['*.password', '*.url', 'password', 'url'],
    hooks: { streamWrite: redact },
  },
  pino.destination(2),
);
