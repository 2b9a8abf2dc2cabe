import type { Client } from '@temporalio/client';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { localStorageFor } from '../backup/repository';
import type { LifelineConfig } from '../config/config';
import { keyringFor } from '../crypto/keys';
import { logger } from '../logger';
import { redact } from '../security/redact';
import { CatalogView, type Listed } from './catalog-view';
import {
  alertStateCollector,
  auditFailuresCollector,
  catalogCollector,
  destinationCollector,
  drillCollector,
  METRICS,
  restoresWaitingCollector,
  type Collector,
  type MetricName,
  type Sample,
  type ScrapeContext,
} from './collectors';

export interface LifelineMetricsOptions {
  /** Visibility queries (restores waiting for approval); absent: that collector is left out. */
  temporalClient?: () => Promise<Client>;
  /** How long one collector may take before the scrape goes on without it (default 8 s: Prometheus' scrape_timeout is 10 s). */
  collectorTimeoutMs?: number;
  /** How long a destination's listing is reused (default 60 s). */
  destinationTtlMs?: number;
}

/**
 * Lifeline's own metrics, computed at scrape time from the repository (catalogs, drill reports, alert
 * state, audit trail), the destinations and Temporal's visibility; plus Node's process metrics
 * (prom-client's defaults: CPU, resident memory, event-loop lag, heap, GC). Nothing is kept between
 * scrapes but caches: a worker that restarts reports the same values.
 */
export class LifelineMetrics {
  readonly registry = new Registry();
  private readonly metrics = new Map<MetricName, Gauge | Counter>();
  private readonly collectorUp: Gauge;
  private readonly scrapeErrors: Counter;
  private readonly scrapeDuration: Gauge;
  private readonly sdkUp: Gauge;
  private readonly collectors: Collector[];
  private readonly view: CatalogView;
  private readonly cached = new Map<Collector, { at: number; samples: Sample[] }>();
  private readonly running = new Map<Collector, Promise<Sample[]>>();
  /** The last error message of each failing collector, so that the log says it once, not every scrape. */
  private readonly lastError = new Map<Collector, string>();
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly config: LifelineConfig,
    private readonly options: LifelineMetricsOptions = {},
  ) {
    this.view = new CatalogView(keyringFor(config));
    for (const [name, spec] of Object.entries(METRICS) as [MetricName, (typeof METRICS)[MetricName]][]) {
      const Kind = spec.type === 'counter' ? Counter : Gauge;
      this.metrics.set(name, new Kind({ name, help: spec.help, labelNames: [...spec.labels], registers: [this.registry] }));
    }
    this.collectorUp = new Gauge({
      name: 'lifeline_collector_up',
      help: '1 if the collector (catalog, destination, drills, audit, alerts, temporal) answered in this scrape, 0 if it failed or timed out (its metrics are then missing; the worker log says why).',
      labelNames: ['collector', 'database', 'destination'],
      registers: [this.registry],
    });
    this.scrapeErrors = new Counter({
      name: 'lifeline_scrape_errors_total',
      help: 'Collector failures and timeouts since this worker started, by collector.',
      labelNames: ['collector'],
      registers: [this.registry],
    });
    this.scrapeDuration = new Gauge({ name: 'lifeline_scrape_duration_seconds', help: "How long this scrape's collectors took.", registers: [this.registry] });
    this.sdkUp = new Gauge({ name: 'lifeline_sdk_metrics_up', help: "1 if the Temporal SDK's runtime metrics (temporal_*) were fetched and appended to this scrape.", registers: [this.registry] });
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters (…_total): Prometheus' conventions (and `promtool check metrics`) refuse them.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);

    const destinationTtl = options.destinationTtlMs ?? 60_000;
    this.collectors = [
      ...config.databases.map((db) => catalogCollector(db)),
      ...config.databases.flatMap((db) => config.destinations.map((d) => destinationCollector(db, d, destinationTtl))),
      drillCollector(),
      auditFailuresCollector(),
      alertStateCollector(),
      ...(options.temporalClient ? [restoresWaitingCollector(options.temporalClient)] : []),
    ];
  }

  /** Collects every metric again (concurrent scrapes share one collection); `registry.metrics()` then gives the text. */
  refresh(): Promise<void> {
    this.inFlight ??= this.collect().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  /** Marks the SDK's metrics as fetched or not, for the scrape being served. */
  setSdkUp(up: boolean): void {
    this.sdkUp.set(up ? 1 : 0);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async collect(): Promise<void> {
    const started = Date.now();
    const locals = new Map<string, Promise<Listed[]>>();
    const ctx: ScrapeContext = {
      now: started,
      config: this.config,
      view: this.view,
      local: (db) => {
        let listing = locals.get(db.name);
        if (!listing) locals.set(db.name, (listing = this.view.list(localStorageFor(db), db.name)));
        return listing;
      },
    };
    const results = await Promise.all(this.collectors.map(async (c) => ({ c, samples: await this.run(c, ctx) })));
    // Only now, all at once: a scrape never shows half of one collection and half of another.
    for (const metric of this.metrics.values()) metric.reset();
    this.collectorUp.reset();
    for (const db of this.config.databases) {
      (this.metrics.get('lifeline_rpo_target_seconds') as Gauge).set({ database: db.name }, this.config.alerts.rpoHours * 3600);
    }
    for (const { c, samples } of results) {
      this.collectorUp.set({ collector: c.collector, ...c.labels }, samples ? 1 : 0);
      for (const s of samples ?? []) {
        const metric = this.metrics.get(s.name)!;
        if (metric instanceof Counter) metric.inc(s.labels, s.value);
        else metric.set(s.labels, s.value);
      }
    }
    this.scrapeDuration.set((Date.now() - started) / 1000);
  }

  /** One collector's samples (cached while fresh), or undefined when it failed or took too long. */
  private async run(c: Collector, ctx: ScrapeContext): Promise<Sample[] | undefined> {
    const cached = this.cached.get(c);
    if (cached && c.ttlMs && ctx.now - cached.at < c.ttlMs) return cached.samples;
    // A collector still busy from an earlier scrape is awaited again, not started twice.
    let pending = this.running.get(c);
    if (!pending) {
      pending = c.collect(ctx).finally(() => this.running.delete(c));
      this.running.set(c, pending);
      // Results that arrive after the timeout still fill the cache for the next scrape.
      pending.then((samples) => this.cached.set(c, { at: ctx.now, samples }), () => undefined);
    }
    const timeoutMs = this.options.collectorTimeoutMs ?? 8000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const samples = await Promise.race([
        pending,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
        }),
      ]);
      if (this.lastError.delete(c)) logger.info({ collector: c.collector, ...c.labels }, 'metrics collector answers again');
      return samples;
    } catch (err) {
      this.scrapeErrors.inc({ collector: c.collector });
      const message = redact((err as Error)?.message ?? String(err));
      if (this.lastError.get(c) !== message) {
        this.lastError.set(c, message);
        logger.warn({ collector: c.collector, ...c.labels, error: message }, `metrics collector ${c.collector} failed: its metrics are left out of the scrape`);
      }
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}
