import type { Logger } from 'pino';
import { redact } from './security/redact';

let pinoLogger: Logger | undefined;

/**
 * Structured logs on stderr, so stdout stays for command output (and --json). Every line is
 * redacted as written (URL passwords, `password=`, known secrets), whatever object it came from.
 * pino is loaded and the logger made at the first use: a CLI command that logs nothing starts without it.
 */
function real(): Logger {
  if (!pinoLogger) {
    const pino = require('pino') as typeof import('pino');
    pinoLogger = pino(
      {
        level: process.env.LOG_LEVEL ?? 'info',
        base: undefined,
        redact: ['*.password', '*.url', 'password', 'url'],
        hooks: { streamWrite: redact },
      },
      pino.destination(2),
    );
  }
  return pinoLogger;
}

export const logger: Logger = new Proxy({} as Logger, {
  get(_, key) {
    const target = real();
    const value = Reflect.get(target, key, target) as unknown;
    return typeof value === 'function' ? value.bind(target) : value;
  },
  set: (_, key, value) => Reflect.set(real(), key, value),
  has: (_, key) => Reflect.has(real(), key),
});
