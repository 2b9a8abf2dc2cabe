import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { logger } from '../logger';

let installed = false;

/** Sends the Temporal SDK's own logs through our logger, at warn and above unless LOG_LEVEL says otherwise. */
export function installTemporalRuntime(): void {
  if (installed) return;
  installed = true;
  const level = (process.env.TEMPORAL_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel;
  Runtime.install({
    logger: new DefaultLogger(level, ({ level: l, message, meta }) => {
      const { error, ...rest } = (meta ?? {}) as Record<string, unknown> & { error?: unknown };
      const fields = { ...rest, ...(error instanceof Error ? { error: error.message, errorType: (error as { type?: string }).type, stack: process.env.LOG_LEVEL === 'debug' ? error.stack : undefined } : {}) };
      const method = l === 'ERROR' ? 'error' : l === 'WARN' ? 'warn' : l === 'INFO' ? 'info' : 'debug';
      logger[method](fields, message);
    }),
  });
}
