import pino from 'pino';

/** Structured logs on stderr, so stdout stays for command output (and --json). */
export const logger = pino(
  { level: process.env.LOG_LEVEL ?? 'info', base: undefined, redact: ['*.password', '*.url', 'password', 'url'] },
  pino.destination(2),
);
