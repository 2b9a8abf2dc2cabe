import { Client, type Connection } from '@temporalio/client';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LifelineConfig } from '../config/config';
import { LifelineError } from '../errors';
import { freePort } from '../infra/net';
import { logger } from '../logger';
import { connectTemporal } from '../temporal/client';
import { installTemporalRuntime } from '../temporal/runtime';
import { mergeExposition } from './exposition';
import { LifelineMetrics, type LifelineMetricsOptions } from './registry';

export interface MetricsEndpoint {
  /** `http://host:port/metrics`. */
  url: string;
  /** Where the SDK core's own exporter listens (loopback), when the runtime was installed with it. */
  sdkMetricsAddress?: string;
  stop(): Promise<void>;
}

export interface MetricsEndpointOptions extends LifelineMetricsOptions {
  /** host:port (LIFELINE_METRICS_ADDRESS); default config.metrics.address. */
  address?: string;
  /** How long to wait for the SDK exporter's text (default 2 s). */
  sdkTimeoutMs?: number;
}

/** `host:port` split; the configuration has checked the form already (hostPort in src/config/schema.ts). */
function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at);
  const port = Number(address.slice(at + 1));
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new LifelineError('ConfigInvalid', `LIFELINE_METRICS_ADDRESS=${address} is not host:port`, { hint: 'use e.g. 127.0.0.1:9464, or 0.0.0.0:9464 for a Prometheus on another machine' });
  }
  return { host, port };
}

async function fetchText(url: string, timeoutMs: number): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.text();
}

/**
 * The worker's Prometheus endpoint: GET /metrics serves Lifeline's metrics (src/metrics/collectors.ts)
 * followed by the Temporal SDK's runtime metrics (temporal_*), which the SDK core exports on a loopback
 * port of its own, chosen here, and which are fetched and appended on each scrape. Any other path is 404,
 * any other method 405. Call it before the worker connects: the runtime is installed once per process,
 * and only an installation made here exports the SDK's metrics.
 */
export async function startMetricsEndpoint(config: LifelineConfig, options: MetricsEndpointOptions = {}): Promise<MetricsEndpoint> {
  const address = options.address ?? config.metrics.address;
  if (!address) throw new LifelineError('ConfigInvalid', 'no metrics address', { hint: 'set LIFELINE_METRICS_ADDRESS, e.g. 127.0.0.1:9464' });
  const { host, port } = splitAddress(address);

  const wanted = `127.0.0.1:${await freePort()}`;
  const sdkMetricsAddress = installTemporalRuntime({ sdkMetricsAddress: wanted }).sdkMetricsAddress;
  if (!sdkMetricsAddress) logger.warn('the Temporal runtime was installed before the metrics endpoint started: the scrape carries no temporal_* metrics');

  let connection: Promise<Connection> | undefined;
  const temporalClient =
    options.temporalClient ??
    (async () => {
      connection ??= connectTemporal(config).catch((err) => {
        connection = undefined; // the next scrape tries again
        throw err;
      });
      return new Client({ connection: await connection, namespace: config.temporal.namespace });
    });
  const metrics = new LifelineMetrics(config, { ...options, temporalClient });
  const sdkTimeoutMs = options.sdkTimeoutMs ?? 2000;

  const scrape = async (): Promise<string> => {
    const sdkText = sdkMetricsAddress
      ? fetchText(`http://${sdkMetricsAddress}/metrics`, sdkTimeoutMs).then(
          (text) => text,
          (err: Error) => {
            logger.debug({ error: err.message }, 'Temporal SDK metrics not fetched');
            return undefined;
          },
        )
      : Promise.resolve(undefined);
    const [sdk] = await Promise.all([sdkText, metrics.refresh()]);
    metrics.setSdkUp(sdk !== undefined);
    return mergeExposition(await metrics.registry.metrics(), sdk ?? '');
  };

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { Allow: 'GET', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method not allowed: GET /metrics\n');
      return;
    }
    scrape().then(
      (text) => res.writeHead(200, { 'Content-Type': metrics.contentType }).end(text),
      (err: Error) => {
        logger.error({ error: err.message }, 'metrics scrape failed');
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('scrape failed: see the worker log\n');
      },
    );
  });
  server.keepAliveTimeout = 65_000; // longer than Prometheus' scrape interval, so its connection is reused
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new LifelineError('MetricsAddressUnavailable', `cannot serve metrics on ${address}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`, {
          hint: 'set LIFELINE_METRICS_ADDRESS to a free host:port (each worker on one machine needs its own)',
          cause: err,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const url = `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}/metrics`;
  logger.info({ endpoint: url, sdkMetricsAddress }, 'metrics endpoint listening');
  return {
    url,
    sdkMetricsAddress,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (connection) await (await connection.catch(() => undefined))?.close().catch(() => undefined);
    },
  };
}
