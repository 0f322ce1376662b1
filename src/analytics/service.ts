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
  /** Subscribes to readings after the pipeline accepted (committed) them; returns the unsubscribe. */
  onAccepted: (fn: (reading: Reading) => void) => () => void;
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
 * AnalyticsStore every `persist_interval_s` and at stop.
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
    this.unsubscribe = this.opts.onAccepted((r) => this.onReading(r));
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
    this.persist();
  }

  health(): ServiceHealth {
    return this.failed
      ? { ok: false, state: 'failed', detail: { error: this.failed } }
      : {
          ok: true,
          state: 'running',
          detail: { rules: this.opts.config.rules.length, open: this.engine.active().length },
        };
  }

  view(): AlertsView {
    return {
      active: this.engine.active(),
      recent: this.engine.recent(),
      counters: { ...this.engine.counters, publishFailed: this.publishFailed },
      rules: this.opts.config.rules.length,
      tracks: this.engine.trackCount,
    };
  }

  /** Operator acknowledgement (admin over /mgmt/alerts). */
  acknowledge(id: string): AlertRecord | undefined {
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
    const now = this.mono();
    const next = new RuleEngine(config);
    next.restore(this.engine.snapshot(now), now);
    this.engine = next;
    this.opts.config = config;
    this.store.prune(next.ruleKeys());
    this.persist();
  }

  private onReading(r: Reading): void {
    try {
      this.emit(this.engine.onReading(r, this.mono()));
    } catch (err) {
      this.warn.warn(
        'evaluate',
        { err, deviceId: r.deviceId },
        'rule evaluation failed; the reading was not evaluated',
      );
    }
  }

  private tick(): void {
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

  private emit(events: readonly AlertEvent[]): void {
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
