import { Counter, type Registry } from 'prom-client';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import { RateLimitedLog } from '../log/rate-limited.js';
import type { IngestMeta, Pipeline, Sink } from '../pipeline/pipeline.js';
import type { Reading } from '../pipeline/reading.js';
import type { LocalTarget } from './publisher.js';

/** Local publishes waiting for aedes at once; beyond it readings are not published locally (counted). */
const MAX_INFLIGHT = 10000;

/**
 * The JSON a local subscriber gets on `sensors/{id}/data`: the structured form the shared
 * normaliser accepts (docs/readings.md), so one format describes both directions. The gateway never
 * re-ingests its own publishes (aedes runs authorizePublish for client packets only).
 */
export function readingJson(r: Reading): string {
  const doc: { ts: number; values: Reading['values']; quality: Reading['quality']; units?: Reading['units'] } = {
    ts: r.ts,
    values: r.values,
    quality: r.quality,
  };
  if (r.units) doc.units = r.units;
  return JSON.stringify(doc);
}

export interface LocalReadingsOptions {
  pipeline: Pipeline;
  local: LocalTarget;
  qos: 0 | 1;
  log: Logger;
  metrics: Registry;
}

/**
 * Every accepted reading, whatever its source, on the local `sensors/{id}/data` (DESIGN data flow
 * sink), so local consumers (Node-RED, Telegraf, Home Assistant) read every device in one place.
 * An after-commit sink (called once every other sink, the outbox included, committed), so nothing
 * is shown locally that the gateway did not keep. Readings that came in over MQTT were already
 * routed to subscribers by the broker on that very topic: never twice.
 */
export class LocalReadings implements Service, Sink {
  readonly name = 'local-readings';
  readonly afterCommit = true;
  private inflight = 0;
  private removeSink: (() => void) | undefined;
  private readonly warn: RateLimitedLog;
  private readonly published: Counter;
  private readonly dropped: Counter;

  constructor(private readonly opts: LocalReadingsOptions) {
    this.warn = new RateLimitedLog(opts.log);
    this.published = new Counter({
      name: 'edge_gateway_local_readings_published_total',
      help: 'Readings from non-MQTT sources published on the local sensors/{id}/data.',
      registers: [opts.metrics],
    });
    this.dropped = new Counter({
      name: 'edge_gateway_local_readings_dropped_total',
      help: 'Readings not published locally because the broker was stopped or too far behind.',
      registers: [opts.metrics],
    });
  }

  async start(): Promise<void> {
    this.removeSink ??= this.opts.pipeline.addSink(this);
  }

  async stop(): Promise<void> {
    this.removeSink?.();
    this.removeSink = undefined;
  }

  health(): ServiceHealth {
    return { ok: true, state: this.removeSink ? 'publishing' : 'stopped', detail: { inflight: this.inflight } };
  }

  /** One ingest call: one source, so an MQTT batch is skipped with one check. */
  accept(readings: readonly Reading[], _meta: IngestMeta): void {
    if (readings[0]?.source === 'mqtt') return;
    for (const r of readings) this.publish(r);
  }

  private publish(r: Reading): void {
    if (r.source === 'mqtt') return;
    if (this.inflight >= MAX_INFLIGHT) {
      this.dropped.inc();
      this.warn.warn('backlog', { inflight: this.inflight }, 'local broker behind; readings not published locally');
      return;
    }
    this.inflight++;
    const topic = `sensors/${r.deviceId}/data`;
    this.opts.local
      .publish({ topic, payload: Buffer.from(readingJson(r)), qos: this.opts.qos, retain: false })
      .then(
        () => this.published.inc(),
        (err: unknown) => {
          this.dropped.inc();
          this.warn.warn('publish', { err, topic }, 'reading not published on the local broker');
        },
      )
      .finally(() => this.inflight--);
  }
}
