import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { IngestMeta, Pipeline, Sink } from '../pipeline/pipeline.js';
import type { Reading } from '../pipeline/reading.js';
import type { Checkpointer } from '../store/checkpoint.js';
import type { Outbox } from './outbox.js';

/**
 * The outbox as a pipeline sink and a service. Started before every source (the composition root
 * orders it first), so nothing is acknowledged that cannot be stored; stopped after them, so the
 * last group commit happens before the database closes.
 */
export class QueueService implements Service, Sink {
  readonly name = 'outbox';
  private removeSink: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: { outbox: Outbox; pipeline: Pipeline; log: Logger; checkpointer?: Checkpointer },
  ) {}

  accept(readings: readonly Reading[], meta: IngestMeta): Promise<void> {
    return this.opts.outbox.enqueueReadings(readings, meta.topic);
  }

  async start(): Promise<void> {
    this.removeSink = this.opts.pipeline.addSink(this);
    this.sweepTimer = setInterval(() => {
      this.opts.outbox.sweep();
      this.opts.checkpointer?.poll();
    }, 1000);
    this.sweepTimer.unref();
    // The outbox's commits are the hot path: keep WAL checkpoints (and their fsync) off the event loop.
    this.opts.checkpointer?.start();
    const depth = this.opts.outbox.classStats().reduce((a, c) => a + c.readings, 0);
    this.opts.log.info({ readings: depth }, 'outbox open');
  }

  async stop(): Promise<void> {
    this.removeSink?.();
    this.removeSink = undefined;
    clearInterval(this.sweepTimer);
    this.opts.outbox.close();
    await this.opts.checkpointer?.stop();
  }

  health(): ServiceHealth {
    const failing = this.opts.outbox.failing;
    return { ok: !failing, state: this.removeSink ? (failing ? 'failing' : 'open') : 'stopped' };
  }
}
