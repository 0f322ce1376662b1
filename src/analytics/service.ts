import { Counter, Gauge, type Registry } from 'prom-client';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import { RateLimitedLog } from '../log/rate-limited.js';
import type { Reading } from '../pipeline/reading.js';
import type { Publisher } from '../publisher/types.js';
import type { Db } from '../store/db.js';
import { TICK_MS } from './backtest.js';
import type { AnalyticsConfig, RuleSpec } from './config.js';
import { RuleEngine, type AlertEvent, type AlertRecord, type EngineCounters } from './engine.js';
import { AnalyticsStore } from './store.js';

export interface AnalyticsServiceOptions {
  config: AnalyticsConfig;
  /** The analytics module owns its tables (rule state). */
  db: Db;
  publisher: Publisher;
  log: Logger;
  /**
   * Subscribes to readings after the pipeline accepted (committed) them, a batch at a time in
   * commit order (the pipeline's after-commit sink); returns the unsubscribe. The service keeps
   * the batch until it evaluates it, so the caller must not change it afterwards.
   */
  onAccepted: (fn: (readings: readonly Reading[]) => void) => () => void;
  registry?: Registry;
  /** Monotonic ms (durations); wall ms (data in alerts). Injected by tests. */
  monotonic?: () => number;
  wallClock?: () => number;
}

/** The /mgmt/alerts document. */
export interface AlertsView {
  active: AlertRecord[];
  recent: AlertRecord[];
  counters: EngineCounters & { publishFailed: number };
  rules: number;
  tracks: number;
}

/** The JSON published on `alerts/{deviceId}` (docs/analytics.md). */
export function alertMessage(e: AlertEvent): Record<string, unknown> {
  const a = e.alert;
  const iso = (t: number | null) => (t !== null && Number.isFinite(t) ? new Date(t).toISOString() : null);
  return {
    event: e.kind,
    ...a,
    raisedAt: iso(a.raisedTs),
    acknowledgedAt: iso(a.acknowledgedTs),
    clearedAt: iso(a.clearedTs),
  };
}

/**
 * Live rule evaluation: accepted readings and a TICK_MS clock drive the pure RuleEngine; its events
 * go out through the publisher (alerts on `alerts/{deviceId}`, local and uplink at the rule's
 * priority; device commands on `commands/{id}`, local only). Rule state is persisted by
 * AnalyticsStore every `persist_interval_s` and at stop; the track of an alert that was raised,
 * acknowledged or cleared is saved at once, before the event is published.
 *
 * Accepted batches are queued with their arrival time and evaluated together in one microtask:
 * a group commit resolves hundreds of ingests at once, and their readings then go through the
 * engine in one loop instead of one call per reading. A microtask, not setImmediate: the queue
 * is empty again before the next I/O, so readings are not kept alive across the event loop
 * (measured: held until setImmediate, even with no rule, ~500 B per reading more were promoted
 * by the scavenger than with the module off; as a microtask, the same as off). Every reading is
 * evaluated at the time it arrived, in arrival order (so per device in order); anything that
 * reads or changes the state (view, acknowledge, the tick, config apply, stop) first evaluates
 * what is queued.
 */
export class AnalyticsService implements Service {
  readonly name = 'analytics';
  private engine: RuleEngine;
  private readonly store: AnalyticsStore;
  private readonly mono: () => number;
  private readonly wall: () => number;
  private readonly warn: RateLimitedLog;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private lastPersist = 0;
  private publishFailed = 0;
  private failed: string | null = null;
  private readonly metrics: { events: Counter<'kind'> | null; active: Gauge | null } = { events: null, active: null };
  private readonly watchers = new Set<() => void>();
  /** Accepted batches not yet evaluated, and the monotonic time each arrived. */
  private queue: (readonly Reading[])[] = [];
  private queueAt: number[] = [];
  private drainScheduled = false;
  private readonly drain = () => {
    this.drainScheduled = false;
    this.flush();
  };

  constructor(private readonly opts: AnalyticsServiceOptions) {
    this.mono = opts.monotonic ?? (() => performance.now());
    this.wall = opts.wallClock ?? Date.now;
    this.engine = new RuleEngine(opts.config);
    this.store = new AnalyticsStore(opts.db);
    this.warn = new RateLimitedLog(opts.log, 60000, this.mono);
    if (opts.registry) {
      this.metrics.events = new Counter({
        name: 'edge_gateway_alerts_total',
        help: 'Alert events by kind (raised, cleared, acknowledged).',
        labelNames: ['kind'],
        registers: [opts.registry],
      });
      this.metrics.active = new Gauge({
        name: 'edge_gateway_alerts_active',
        help: 'Alerts raised and not yet cleared.',
        registers: [opts.registry],
        collect: () => this.metrics.active?.set(this.engine.active().length),
      });
    }
  }

  async start(): Promise<void> {
    const now = this.mono();
    const saved = this.store.load();
    if (saved) this.engine.restore(saved, now);
    this.store.prune(this.engine.ruleKeys());
    this.lastPersist = now;
    this.unsubscribe = this.opts.onAccepted((batch) => this.enqueue(batch));
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    this.opts.log.info(
      {
        rules: this.opts.config.rules.length,
        restoredTracks: saved?.tracks.length ?? 0,
        open: this.engine.active().length,
      },
      'analytics rules evaluating',
    );
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.flush();
    this.persist();
  }

  health(): ServiceHealth {
    this.flush();
    return this.failed
      ? { ok: false, state: 'failed', detail: { error: this.failed } }
      : {
          ok: true,
          state: 'running',
          detail: { rules: this.opts.config.rules.length, open: this.engine.active().length },
        };
  }

  view(): AlertsView {
    this.flush();
    return {
      active: this.engine.active(),
      recent: this.engine.recent(),
      counters: { ...this.engine.counters, publishFailed: this.publishFailed },
      rules: this.opts.config.rules.length,
      tracks: this.engine.trackCount,
    };
  }

  /** Called after every alert event (observers of /mgmt/alerts, RFC 7641). */
  onChange(fn: () => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  /** Operator acknowledgement (admin over /mgmt/alerts). */
  acknowledge(id: string): AlertRecord | undefined {
    this.flush();
    const e = this.engine.acknowledge(id, this.wall());
    if (!e) return undefined;
    this.emit([e]);
    return e.alert;
  }

  /**
   * Live config apply: a new engine takes over the state of every unchanged rule (changed and
   * removed rules start fresh; their open alerts are dropped, as a new rule has none).
   */
  applyConfig(config: AnalyticsConfig): void {
    this.flush(); // readings accepted before the apply are evaluated by the rules they arrived under
    const now = this.mono();
    const next = new RuleEngine(config);
    next.restore(this.engine.snapshot(now), now);
    this.engine = next;
    this.opts.config = config;
    this.store.prune(next.ruleKeys());
    this.persist();
  }

  private enqueue(batch: readonly Reading[]): void {
    this.queue.push(batch);
    this.queueAt.push(this.mono());
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      queueMicrotask(this.drain);
    }
  }

  /** Evaluates every queued reading at its arrival time, in arrival order; then saves and publishes the events. */
  private flush(): void {
    if (this.queue.length === 0) return;
    const batches = this.queue;
    const at = this.queueAt;
    this.queue = [];
    this.queueAt = [];
    const events: AlertEvent[] = [];
    for (let i = 0; i < batches.length; i++) {
      const batch = batches[i]!;
      const now = at[i]!;
      for (let j = 0; j < batch.length; j++) {
        try {
          this.engine.onReading(batch[j]!, now, events);
        } catch (err) {
          this.warn.warn(
            'evaluate',
            { err, deviceId: batch[j]!.deviceId },
            'rule evaluation failed; the reading was not evaluated',
          );
        }
      }
    }
    this.emit(events);
  }

  private tick(): void {
    this.flush();
    const now = this.mono();
    try {
      this.emit(this.engine.tick(now, this.wall()));
    } catch (err) {
      this.warn.warn('tick', { err }, 'rule tick failed');
    }
    if (now - this.lastPersist >= this.opts.config.persist_interval_s * 1000) {
      this.lastPersist = now;
      this.persist();
    }
  }

  private persist(): void {
    try {
      this.store.save(this.engine, this.mono());
      this.failed = null;
    } catch (err) {
      // A full disk must not stop evaluation; the state is kept in memory and saved next time.
      this.failed = `rule state not saved: ${(err as Error).message}`;
      this.warn.warn('persist', { err }, 'cannot save rule state');
    }
  }

  /** Saves the tracks of these alerts now: an alert that was published is never lost to a crash, nor its id reused. */
  private saveAlerts(events: readonly AlertEvent[]): void {
    try {
      this.store.saveTracksOf(
        this.engine,
        events.map((e) => e.alert),
        this.mono(),
      );
    } catch (err) {
      this.failed = `rule state not saved: ${(err as Error).message}`;
      this.warn.warn('persist', { err }, 'cannot save rule state');
    }
  }

  private emit(events: readonly AlertEvent[]): void {
    if (events.length === 0) return;
    this.saveAlerts(events);
    for (const fn of this.watchers) fn();
    for (const e of events) {
      this.metrics.events?.inc({ kind: e.kind });
      const a = e.alert;
      this.opts.log.info({ alert: a.id, rule: a.rule, deviceId: a.deviceId, value: a.value }, `alert ${e.kind}`);
      this.send({
        topic: `alerts/${a.deviceId}`,
        payload: JSON.stringify(alertMessage(e)),
        qos: 1,
        priority: a.priority,
        source: 'alert',
        labels: [a.severity, e.kind],
      });
      const spec = this.ruleSpec(a.rule);
      const cmd = e.kind === 'raised' ? spec?.on_raise : e.kind === 'cleared' ? spec?.on_clear : undefined;
      if (cmd) {
        const device = cmd.device ?? a.deviceId;
        const payload = typeof cmd.payload === 'string' ? cmd.payload : JSON.stringify(cmd.payload ?? {});
        this.send({ topic: `commands/${device}`, payload, qos: 1, local: true, uplink: false, source: 'alert' });
      }
    }
  }

  private ruleSpec(name: string): RuleSpec | undefined {
    return this.opts.config.rules.find((r) => r.name === name);
  }

  private send(req: Parameters<Publisher['publish']>[0]): void {
    this.opts.publisher.publish(req).catch((err: unknown) => {
      this.publishFailed++;
      this.warn.warn(`publish:${req.topic}`, { err, topic: req.topic }, 'alert or command could not be published');
    });
  }
}
