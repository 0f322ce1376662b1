import type { CapabilityModule } from '../capability/types.js';
import { needDb } from '../capability/needs.js';
import type { Service } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import { HistoryStore } from './store.js';

export { HistoryStore } from './store.js';

/** Flushes the history on an interval, sweeps by age every minute, and flushes at stop. */
class HistoryService implements Service {
  readonly name = 'history';
  private flushTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private failed: string | null = null;

  constructor(
    private readonly store: HistoryStore,
    private readonly flushMs: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.flushTimer = setInterval(() => this.run(() => this.store.flush()), this.flushMs);
    this.sweepTimer = setInterval(() => this.run(() => this.store.sweep(Date.now())), 60_000);
    this.flushTimer.unref();
    this.sweepTimer.unref();
    this.run(() => this.store.sweep(Date.now()));
  }

  async stop(): Promise<void> {
    clearInterval(this.flushTimer);
    clearInterval(this.sweepTimer);
    this.run(() => this.store.flush());
  }

  health() {
    // A history that cannot be written (disk full) is reported, but the gateway stays healthy:
    // the outbox, not the history, carries what was accepted.
    return {
      ok: true,
      state: this.failed ? 'failing' : 'keeping',
      detail: { ...this.store.stats, error: this.failed },
    };
  }

  private run(fn: () => unknown): void {
    try {
      fn();
      this.failed = null;
    } catch (err) {
      if (this.failed === null) this.log.warn({ err }, 'history cannot be written; retrying at the next flush');
      this.failed = (err as Error).message;
    }
  }
}

/**
 * Bounded local history (docs/history.md): an after-commit sink, so only accepted readings are
 * kept, in arrival order; served by GET /sensors/{id}/history (coap module) and the status page.
 */
export const historyModule: CapabilityModule = {
  name: 'history',
  ownsTables: true,
  enabled: (config) => config.history.enabled,
  build(ctx, db) {
    const store = new HistoryStore(needDb(db, 'history'), ctx.config.history);
    ctx.pipeline.addSink({
      name: 'history',
      afterCommit: true,
      accept: (readings) => store.offer(readings, performance.now()),
    });
    return {
      services: [new HistoryService(store, ctx.config.history.flush_interval_ms, ctx.log.child({ mod: 'history' }))],
      provides: { history: store },
    };
  },
};
