import { DefaultLogger, Runtime, type LogLevel, type TelemetryOptions } from '@temporalio/worker';
import { logger } from '../logger';

export interface TemporalRuntimeOptions {
  /**
   * `127.0.0.1:<port>`: the SDK core serves its own metrics (workflow and activity task latencies,
   * slots, polls, requests) in Prometheus text there; the worker's metrics endpoint (src/metrics)
   * fetches and appends them on each scrape. Absent: the SDK records no metrics.
   */
  sdkMetricsAddress?: string;
}

let installed: TemporalRuntimeOptions | undefined;

/**
 * Installs the Temporal SDK's runtime, once per process and before any NativeConnection: its logs go
 * through our logger (warn and above unless TEMPORAL_LOG_LEVEL says otherwise) and, when asked, its
 * metrics to a Prometheus exporter on a loopback port. The first call decides; a later call returns
 * what was installed (createWorker calls it with nothing: a metrics endpoint started before keeps its
 * exporter). Only a worker process calls it: the CLI never installs a runtime, so never serves metrics.
 */
export function installTemporalRuntime(options: TemporalRuntimeOptions = {}): TemporalRuntimeOptions {
  if (installed) return installed;
  installed = { ...options };
  const level = (process.env.TEMPORAL_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel;
  const telemetryOptions: TelemetryOptions | undefined = options.sdkMetricsAddress
    ? {
        metrics: {
          // Prometheus conventions, so `promtool check metrics` accepts the merged text: counters end
          // in _total, durations are in seconds and histograms carry their unit (…_latency_seconds).
          prometheus: { bindAddress: options.sdkMetricsAddress, countersTotalSuffix: true, useSecondsForDurations: true, unitSuffix: true },
        },
      }
    : undefined;
  Runtime.install({
    logger: new DefaultLogger(level, ({ level: l, message, meta }) => {
      const { error, ...rest } = (meta ?? {}) as Record<string, unknown> & { error?: unknown };
      const fields = { ...rest, ...(error instanceof Error ? { error: error.message, errorType: (error as { type?: string }).type, stack: process.env.LOG_LEVEL === 'debug' ? error.stack : undefined } : {}) };
      // The long task queue's Worker runs activities only (src/temporal/worker.ts): intended, not a warning.
      const activitiesOnly = message === 'No workflows registered, not polling for workflow tasks';
      const method = activitiesOnly ? 'debug' : l === 'ERROR' ? 'error' : l === 'WARN' ? 'warn' : l === 'INFO' ? 'info' : 'debug';
      logger[method](fields, message);
    }),
    ...(telemetryOptions && { telemetryOptions }),
  });
  return installed;
}
