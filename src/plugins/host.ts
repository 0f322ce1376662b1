import type { Logger } from '../log/logger.js';
import { GatewayError } from '../errors.js';
import type { PluginsConfig, PluginEntry } from './config.js';
import type { FacadeDeps } from './facade.js';
import type { PluginReading } from './api.js';
import { startInline } from './inline.js';
import { startWorker } from './worker.js';

export type PluginState = 'loading' | 'ready' | 'retrying' | 'failed' | 'quarantined' | 'stopped' | 'disabled';
export type HookKind = 'annotate' | 'transform' | 'drop' | 'observe' | 'alert' | 'inspection' | 'timer' | 'coap';

export interface HookStats {
  calls: number;
  errors: number;
  timeouts: number;
  slow: number;
  skipped: number;
  totalUs: number;
  maxUs: number;
}

export type SyncHook = { kind: 'annotate' | 'transform' | 'drop'; fn: (r: PluginReading) => unknown };

/** One running generation of a plugin (inline module instance or worker). */
export interface Instance {
  readonly version: string;
  readonly apiVersion: string;
  /** annotate/transform/drop, in registration order (inline only). */
  readonly syncHooks: readonly SyncHook[];
  readonly wants: { observe: boolean; alert: boolean; inspection: boolean };
  observe(r: Readonly<PluginReading>): void;
  alert(a: Readonly<Record<string, unknown>>, deviceId: string): void;
  inspection(a: Readonly<Record<string, unknown>>, cameraId: string): void;
  stop(timeoutMs: number): Promise<void>;
}

/** What a runtime (inline.ts, worker.ts) gets from its host. */
export interface RuntimeHost {
  readonly name: string;
  readonly entry: PluginEntry;
  readonly cfg: PluginsConfig;
  readonly file: string;
  readonly generation: number;
  /** Changes only on reload/release: the module URL's cache-buster (a retry re-uses the imported module). */
  readonly codeVersion: number;
  readonly deps: FacadeDeps;
  readonly log: Logger;
  readonly budgetMs: number;
  /** Counts one call's outcome (ms it took synchronously; error when it threw / rejected). */
  record(kind: HookKind, ms: number, error?: unknown): void;
  timeout(kind: HookKind, detail: string): void;
  skipped(kind: HookKind): void;
  /** The worker died (budget, heap, crash): restart with backoff or quarantine. */
  crashed(reason: string): void;
}

const KINDS: HookKind[] = ['annotate', 'transform', 'drop', 'observe', 'alert', 'inspection', 'timer', 'coap'];

/**
 * One configured plugin: state machine (docs/plugins.md "Lifecycle"), failure accounting and
 * quarantine, retry backoff, reload. The instance (inline module or worker) does the rest.
 */
export class PluginHost implements RuntimeHost {
  state: PluginState = 'stopped';
  instance: Instance | undefined;
  generation = 0;
  codeVersion = 1;
  lastError: { code: string; message: string; at: string } | undefined;
  private since = Date.now();
  readonly stats: Record<HookKind, HookStats>;
  private window = { start: performance.now(), failures: 0 };
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAttempt = 0;
  workerRestarts = 0;
  /** Rate-limited warnings per key: last time logged and how many were suppressed since (no allocation when suppressed). */
  private readonly warned = new Map<string, { at: number; suppressed: number }>();
  readonly log: Logger;
  private busy: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(
    public entry: PluginEntry,
    readonly cfg: PluginsConfig,
    public file: string,
    readonly deps: FacadeDeps,
    private readonly onQuarantine: (name: string, reason: string) => void,
  ) {
    this.log = deps.log.child({ plugin: entry.name });
    this.stats = Object.fromEntries(
      KINDS.map((k) => [k, { calls: 0, errors: 0, timeouts: 0, slow: 0, skipped: 0, totalUs: 0, maxUs: 0 }]),
    ) as Record<HookKind, HookStats>;
  }

  get name(): string {
    return this.entry.name;
  }
  get budgetMs(): number {
    return this.entry.hook_budget_ms ?? this.cfg.hook_budget_ms;
  }
  get ready(): boolean {
    return this.state === 'ready' && this.instance !== undefined;
  }

  /** First start: disabled, quarantined (persisted) or load. Serialised with reload/stop. */
  start(): Promise<void> {
    return this.serial(async () => {
      this.stopping = false;
      if (!this.entry.enabled) return this.set('disabled');
      const q = this.deps.store.quarantined(this.name);
      if (q) {
        this.lastError = { code: 'EGW_PLUGIN_QUARANTINED', message: q.reason, at: new Date(q.at).toISOString() };
        this.log.warn(
          { code: 'EGW_PLUGIN_QUARANTINED', reason: q.reason },
          'plugin is quarantined; not loaded (ctl plugins release NAME)',
        );
        return this.set('quarantined');
      }
      await this.load();
    });
  }

  /** Safe mode: not loaded at this start (`stopped`, or `disabled` when the YAML disables it). */
  skipForSafeMode(): void {
    this.set(this.entry.enabled ? 'stopped' : 'disabled');
  }

  stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    return this.serial(async () => {
      await this.unload();
      if (this.state !== 'quarantined' && this.state !== 'disabled' && this.state !== 'failed') this.set('stopped');
    });
  }

  /** New code and config: stop this generation, import again (a new worker for worker plugins). */
  reload(entry: PluginEntry, file: string): Promise<void> {
    clearTimeout(this.retryTimer);
    return this.serial(async () => {
      await this.unload();
      this.entry = entry;
      this.file = file;
      this.codeVersion++;
      this.retryAttempt = 0;
      this.workerRestarts = 0;
      this.resetWindow();
      this.stopping = false;
      if (!entry.enabled) return this.set('disabled');
      if (this.deps.store.quarantined(this.name)) return this.set('quarantined');
      await this.load();
    });
  }

  disable(): Promise<void> {
    clearTimeout(this.retryTimer);
    return this.serial(async () => {
      await this.unload();
      this.set('disabled');
    });
  }

  /** Out of quarantine (persisted), then load. */
  release(): Promise<boolean> {
    const had = this.deps.store.release(this.name);
    return this.reload(this.entry, this.file).then(() => had);
  }

  // ---- accounting (called on the data path: keep cheap) ----

  record(kind: HookKind, ms: number, error?: unknown): void {
    const s = this.stats[kind];
    s.calls++;
    const us = ms * 1000;
    s.totalUs += us;
    if (us > s.maxUs) s.maxUs = us;
    if (error !== undefined) {
      s.errors++;
      if (this.mayWarn(`${kind}:error`))
        this.warn(
          `${kind}:error`,
          { err: error, hook: kind, code: 'EGW_PLUGIN_HOOK', errors: s.errors },
          'plugin hook failed',
        );
      this.failure(kind, 'failed', error);
    } else if (ms > this.budgetMs) {
      // A synchronous hook cannot be interrupted; it is reported and counted as a failure.
      s.slow++;
      if (this.mayWarn(`${kind}:slow`))
        this.warn(
          `${kind}:slow`,
          { hook: kind, ms: Math.round(ms), budgetMs: this.budgetMs, code: 'EGW_PLUGIN_HOOK' },
          'plugin hook over its budget (it blocked the event loop)',
        );
      this.failure(kind, 'slow');
    }
  }

  timeout(kind: HookKind, detail: string): void {
    this.stats[kind].timeouts++;
    if (this.mayWarn(`${kind}:timeout`))
      this.warn(
        `${kind}:timeout`,
        { hook: kind, budgetMs: this.budgetMs, code: 'EGW_PLUGIN_HOOK', detail },
        'plugin hook did not settle within its budget',
      );
    this.failure(kind, 'timeout');
  }

  skipped(kind: HookKind): void {
    this.stats[kind].skipped++;
  }

  crashed(reason: string): void {
    if (this.stopping || this.state !== 'ready') return;
    this.workerRestarts++;
    this.log.error({ code: 'EGW_PLUGIN_HOOK', reason, restarts: this.workerRestarts }, 'plugin worker terminated');
    const inst = this.instance;
    this.instance = undefined;
    if (this.workerRestarts > this.cfg.worker_restarts) {
      void inst?.stop(0);
      this.quarantine(`worker killed ${this.workerRestarts} times; last: ${reason}`);
      return;
    }
    void this.serial(async () => {
      await inst?.stop(0);
      this.scheduleRetry({ code: 'EGW_PLUGIN_HOOK', message: reason });
    });
  }

  view(): Record<string, unknown> {
    const hooks: Record<string, unknown> = {};
    for (const k of KINDS) {
      const s = this.stats[k];
      if (s.calls === 0 && s.timeouts === 0 && s.skipped === 0) continue;
      hooks[k] = {
        ...s,
        totalUs: Math.round(s.totalUs),
        maxUs: Math.round(s.maxUs),
        meanUs: s.calls ? Math.round((s.totalUs / s.calls) * 10) / 10 : 0,
      };
    }
    const sum = (f: keyof HookStats) => KINDS.reduce((n, k) => n + this.stats[k][f], 0);
    return {
      name: this.name,
      state: this.state,
      since: new Date(this.since).toISOString(),
      version: this.instance?.version ?? null,
      apiVersion: this.instance?.apiVersion ?? null,
      isolation: this.entry.isolation,
      generation: this.generation,
      hookBudgetMs: this.budgetMs,
      errors: sum('errors'),
      timeouts: sum('timeouts'),
      slow: sum('slow'),
      workerRestarts: this.workerRestarts,
      hooks,
      lastError: this.lastError ?? null,
    };
  }

  // ---- internals ----

  /** Counts a failure; the reason string is only built when it quarantines (hot path under a faulty plugin). */
  private failure(kind: HookKind, what: 'failed' | 'slow' | 'timeout', error?: unknown): void {
    const now = performance.now();
    if (now - this.window.start > this.cfg.quarantine_window_s * 1000) this.window = { start: now, failures: 0 };
    this.window.failures++;
    if (this.window.failures >= this.cfg.quarantine_after && this.state === 'ready') {
      const detail =
        what === 'failed'
          ? `failed: ${(error as Error)?.message ?? String(error)}`
          : what === 'slow'
            ? `ran over its ${this.budgetMs} ms budget`
            : `did not settle within ${this.budgetMs} ms`;
      this.quarantine(
        `${this.window.failures} failures within ${this.cfg.quarantine_window_s} s; last: ${kind} hook ${detail}`,
      );
    }
  }

  private static readonly WARN_EVERY_MS = 10_000;

  private mayWarn(key: string): boolean {
    const w = this.warned.get(key);
    if (w && performance.now() - w.at < PluginHost.WARN_EVERY_MS) {
      w.suppressed++;
      return false;
    }
    return true;
  }

  private warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const w = this.warned.get(key);
    this.warned.set(key, { at: performance.now(), suppressed: 0 });
    this.log.warn(w && w.suppressed > 0 ? { ...fields, suppressed: w.suppressed } : fields, msg);
  }

  private resetWindow(): void {
    this.window = { start: performance.now(), failures: 0 };
  }

  /** Stops the hooks at once (state first), persists, then unloads in the background. */
  private quarantine(reason: string): void {
    this.set('quarantined');
    this.lastError = { code: 'EGW_PLUGIN_QUARANTINED', message: reason, at: new Date().toISOString() };
    this.deps.store.quarantine(this.name, reason);
    this.log.error(
      { code: 'EGW_PLUGIN_QUARANTINED', reason },
      'plugin quarantined; it stays off across restarts until released (ctl plugins release NAME)',
    );
    this.onQuarantine(this.name, reason);
    void this.serial(() => this.unload());
  }

  private async load(): Promise<void> {
    this.set('loading');
    this.generation++;
    try {
      const start = this.entry.isolation === 'worker' ? startWorker : startInline;
      const inst = await start(this);
      if (this.state !== 'loading') {
        // Quarantined or stopped while setup ran.
        await inst.stop(this.cfg.shutdown_timeout_ms);
        return;
      }
      this.instance = inst;
      this.retryAttempt = 0;
      this.set('ready');
      this.log.info(
        { version: inst.version, isolation: this.entry.isolation, generation: this.generation },
        'plugin ready',
      );
    } catch (err) {
      const code = (err as { code?: string }).code;
      const name = (err as Error)?.name;
      const message = (err as Error)?.message ?? String(err);
      if (name === 'PluginNotReadyError') return this.scheduleRetry({ code: 'EGW_PLUGIN_SETUP', message });
      const failCode = name === 'PluginConfigError' ? 'EGW_PLUGIN_CONFIG' : (code ?? 'EGW_PLUGIN_SETUP');
      this.lastError = { code: failCode, message, at: new Date().toISOString() };
      this.log.error({ code: failCode, err }, 'plugin failed to load; fix it and reload (ctl plugins reload NAME)');
      this.set('failed');
    }
  }

  private scheduleRetry(e: { code: string; message: string }): void {
    if (this.stopping) return;
    this.lastError = { ...e, at: new Date().toISOString() };
    const delay = Math.min(this.cfg.retry.max_ms, this.cfg.retry.min_ms * 2 ** Math.min(this.retryAttempt, 20));
    this.retryAttempt++;
    if (this.retryAttempt === 1)
      this.log.warn({ code: e.code, reason: e.message, delayMs: delay }, 'plugin not ready; retrying with backoff');
    this.set('retrying');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(
      () => void this.serial(() => (this.state === 'retrying' ? this.load() : Promise.resolve())),
      delay,
    );
    this.retryTimer.unref();
  }

  private async unload(): Promise<void> {
    clearTimeout(this.retryTimer);
    const inst = this.instance;
    this.instance = undefined;
    if (inst) await inst.stop(this.cfg.shutdown_timeout_ms);
  }

  private set(state: PluginState): void {
    if (this.state !== state) this.since = Date.now();
    this.state = state;
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.busy.then(fn, fn);
    this.busy = next.catch((err: unknown) => this.log.error({ err }, 'plugin lifecycle step failed'));
    return next;
  }
}

/** A timeout that rejects with a coded error (setup, shutdown). */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GatewayError('EGW_PLUGIN_SETUP', message)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
