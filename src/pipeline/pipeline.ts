import { EventEmitter } from 'node:events';
import type { Logger } from '../log/logger.js';
import { GatewayError } from '../errors.js';
import type { Transport } from '../devices/registry.js';
import type { RefusalCode } from './normalise.js';
import type { Reading, ReadingSource } from './reading.js';

/** Where a batch of readings came from; sinks use it to classify (priority rules match on topic/source). */
export interface IngestMeta {
  /** Local topic the readings map to, e.g. `sensors/press-07/data`. */
  topic: string;
  /** Client id / driver id / CoAP peer that produced them, for the device registry and logs. */
  origin?: string;
}

/**
 * A transform stage (plugins, rules, analytics): returns the reading to pass on, possibly changed,
 * or null to drop it. Stages are synchronous so one slow plugin cannot stall acknowledgement;
 * plugins that need I/O do it on their own and publish later.
 */
export type Stage = (reading: Reading, meta: IngestMeta) => Reading | null;

/**
 * A sink consumes accepted readings. If it returns a promise, the source is acknowledged only
 * when it resolves (the outbox resolves after its group commit: acknowledge after commit).
 */
export interface Sink {
  readonly name: string;
  /**
   * A sink that only reflects what was committed (the latest-value cache): called once every other
   * sink committed, in commit order, so it never shows a reading the gateway then failed to store.
   */
  readonly afterCommit?: boolean;
  accept(readings: readonly Reading[], meta: IngestMeta): void | Promise<void>;
}

/**
 * A payload the boundary could not accept whole: refused (nothing accepted) or accepted with
 * readings or fields left out. MQTT 3.1.1 has no negative PUBACK, so the source acknowledges it
 * anyway and the refusal sink keeps the original bytes (dead-letter store, docs/readings.md).
 */
export interface Refusal {
  source: ReadingSource;
  /** Device-registry transport; absent for sources that are not devices. */
  transport: Transport | undefined;
  /** Undefined when the id itself was refused. */
  deviceId: string | undefined;
  /** Client id / CoAP peer / driver id. */
  origin: string | undefined;
  topic: string | undefined;
  /** The original bytes as received (or the sample as JSON for drivers). */
  payload: Uint8Array;
  code: RefusalCode;
  reason: string;
  /** Readings of the same payload that were accepted (0: refused whole). */
  accepted: number;
}

/** Keeps refused payloads (the dead-letter store); resolves once they are committed. */
export interface RefusalSink {
  refuse(r: Refusal): void | Promise<void>;
}

export interface PipelineOptions {
  log: Logger;
  /** Bound on readings accepted but not yet committed by every sink; beyond it ingest is refused. */
  maxPending: number;
}

export interface PipelineEvents {
  /** After every sink committed, in the order the batches committed (the latest-value cache listens). */
  reading: [reading: Reading, meta: IngestMeta];
}

/**
 * decode → Reading → stages → sinks. Sources call `ingest` and acknowledge their peer when the
 * returned promise resolves; a rejection means "not accepted, do not acknowledge".
 */
export class Pipeline extends EventEmitter<PipelineEvents> {
  private readonly stages: { name: string; fn: Stage }[] = [];
  private readonly sinks: Sink[] = [];
  private readonly committedSinks: Sink[] = [];
  private pending = 0;
  private refusals: RefusalSink | undefined;
  /** `invalid`: payloads with something refused at the boundary (kept as dead letters). */
  readonly counters = { accepted: 0, dropped: 0, refused: 0, stageErrors: 0, invalid: 0 };

  constructor(private readonly opts: PipelineOptions) {
    super();
  }

  addStage(name: string, fn: Stage): () => void {
    const entry = { name, fn };
    this.stages.push(entry);
    return () => {
      const i = this.stages.indexOf(entry);
      if (i >= 0) this.stages.splice(i, 1);
    };
  }

  addSink(sink: Sink): () => void {
    const list = sink.afterCommit ? this.committedSinks : this.sinks;
    list.push(sink);
    return () => {
      const i = list.indexOf(sink);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Where sources hand refused payloads (the composition root sets the dead-letter store). */
  setRefusalSink(sink: RefusalSink | undefined): void {
    this.refusals = sink;
  }

  /**
   * A source reports a payload it could not accept whole. Resolves once the refusal sink kept it,
   * so the source acknowledges only what is stored; never rejects (a failing dead-letter store
   * must not turn into a retry loop of the same bad payload).
   */
  async refuse(r: Refusal): Promise<void> {
    this.counters.invalid++;
    if (!this.refusals) return;
    try {
      await this.refusals.refuse(r);
    } catch (err) {
      this.opts.log.error({ err, deviceId: r.deviceId }, 'the refusal sink failed; the refused payload is not kept');
    }
  }

  get depth(): number {
    return this.pending;
  }

  async ingest(readings: readonly Reading[], meta: IngestMeta): Promise<void> {
    // An idle pipeline always takes one batch, however large: a source whose batch exceeds
    // maxPending would otherwise be refused forever (drivers retry on overload). Pending is
    // therefore bounded by max(maxPending, largest batch).
    if (this.pending > 0 && this.pending + readings.length > this.opts.maxPending) {
      this.counters.refused += readings.length;
      throw new GatewayError('EGW_PIPELINE_OVERLOAD', `pipeline full (${this.pending} pending)`);
    }
    const out: Reading[] = [];
    for (const r of readings) {
      const kept = this.runStages(r, meta);
      if (kept) out.push(kept);
      else this.counters.dropped++;
    }
    if (out.length === 0) return;
    this.pending += out.length;
    try {
      const waits: Promise<void>[] = [];
      for (const sink of this.sinks) {
        const p = sink.accept(out, meta);
        if (p) waits.push(p);
      }
      await Promise.all(waits);
      this.counters.accepted += out.length;
      for (const sink of this.committedSinks) {
        try {
          void sink.accept(out, meta);
        } catch (err) {
          // Committed already: a failing view must not turn an accepted reading into a refusal.
          this.opts.log.error({ err, sink: sink.name }, 'after-commit sink threw');
        }
      }
      for (const r of out) this.emit('reading', r, meta);
    } finally {
      this.pending -= out.length;
    }
  }

  private runStages(reading: Reading, meta: IngestMeta): Reading | null {
    let r: Reading | null = reading;
    for (const stage of this.stages) {
      try {
        r = stage.fn(r, meta);
      } catch (err) {
        // A faulty stage (plugin) must not take the pipeline down: skip it, keep the reading.
        this.counters.stageErrors++;
        this.opts.log.warn({ err, stage: stage.name }, 'pipeline stage threw; reading passed on unchanged');
      }
      if (r === null) return null;
    }
    return r;
  }
}
