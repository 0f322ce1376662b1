import { GatewayError } from '../errors.js';
import type { PluginContext, PluginCoapReply, PluginReading, CoapHandler } from './api.js';
import { CapabilityGuard } from './capabilities.js';
import { Facade, pluginRequest } from './facade.js';
import type { HookKind, Instance, RuntimeHost, SyncHook } from './host.js';
import { withTimeout } from './host.js';
import { checkDefinition, importPlugin, validatePluginConfig } from './load.js';

/**
 * Async hook calls not settled yet, oldest first (Map keeps insertion order), swept on one timer:
 * a hook that never settles is counted once as a timeout when its budget ends and forgotten, so it
 * holds neither the data path nor an unbounded list (max_inflight bounds the calls admitted).
 */
export class PendingCalls {
  private readonly pending = new Map<number, { t0: number; kind: HookKind }>();
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: RuntimeHost,
    private readonly max: number,
  ) {}

  /** Calls fn guarded; a returned promise is tracked against the budget. */
  call(kind: HookKind, fn: () => unknown): void {
    if (this.pending.size >= this.max) return this.host.skipped(kind);
    const t0 = performance.now();
    let r: unknown;
    try {
      r = fn();
    } catch (err) {
      return this.host.record(kind, performance.now() - t0, err);
    }
    const ms = performance.now() - t0;
    if (!isThenable(r)) return this.host.record(kind, ms);
    const id = ++this.seq;
    this.pending.set(id, { t0, kind });
    this.arm();
    r.then(
      () => {
        if (this.pending.delete(id)) this.host.record(kind, ms);
      },
      (err: unknown) => {
        if (this.pending.delete(id)) this.host.record(kind, ms, err ?? new Error('rejected'));
      },
    );
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), Math.max(5, Math.floor(this.host.budgetMs / 4)));
    this.timer.unref();
  }

  private sweep(): void {
    const limit = performance.now() - this.host.budgetMs;
    for (const [id, p] of this.pending) {
      if (p.t0 > limit) break;
      this.pending.delete(id);
      this.host.timeout(p.kind, 'async hook still pending');
    }
    if (this.pending.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Loads a plugin into the gateway's own thread: import (cache-busted per generation), check
 * definition and apiVersion, validate and freeze config, build the ctx facade, run setup within
 * setup_timeout_ms. What it registered is undone if setup fails.
 */
export async function startInline(host: RuntimeHost): Promise<Instance> {
  const exported = await importPlugin(host.file, host.codeVersion).catch((err: unknown) => {
    throw new GatewayError(
      'EGW_PLUGIN_LOAD',
      `plugin ${host.name}: cannot import ${host.file}: ${(err as Error).message}`,
      { cause: err },
    );
  });
  const def = checkDefinition(exported, host.name);
  const setup = (exported as { setup: (ctx: PluginContext) => unknown }).setup;
  const config = validatePluginConfig(host.name, def.configSchema, host.entry.config);
  const facade = new Facade(host.name, host.deps, new CapabilityGuard(host.name, def.capabilities));
  const guard = new CapabilityGuard(host.name, def.capabilities);
  const abort = new AbortController();
  const closeFns: (() => unknown)[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const syncHooks: SyncHook[] = [];
  const observe: ((r: Readonly<PluginReading>) => unknown)[] = [];
  const alerts: ((a: Readonly<Record<string, unknown>>, id: string) => unknown)[] = [];
  const inspections: ((a: Readonly<Record<string, unknown>>, id: string) => unknown)[] = [];
  const pending = new PendingCalls(host, host.cfg.max_inflight);
  const wants = { observe: false, alert: false, inspection: false };
  let open = true;
  const live = () => {
    if (!open) throw new GatewayError('EGW_PLUGIN_HOOK', `plugin ${host.name} is stopped`);
  };
  const fnArg = (fn: unknown, what: string) => {
    if (typeof fn !== 'function') throw new TypeError(`${what} needs a function`);
  };
  const timer = (fn: () => unknown, ms: number, repeat: boolean) => {
    live();
    fnArg(fn, 'setTimeout/setInterval');
    const t = (repeat ? setInterval : setTimeout)(
      () => {
        if (!repeat) timers.delete(t);
        pending.call('timer', fn);
      },
      Math.max(1, Number(ms) || 0),
    );
    timers.add(t);
    return {
      cancel: () => {
        clearTimeout(t);
        timers.delete(t);
      },
    };
  };
  const ctx: PluginContext = {
    name: host.name,
    config: config as Readonly<Record<string, unknown>>,
    log: host.log,
    signal: abort.signal,
    onClose: (fn) => {
      fnArg(fn, 'onClose');
      closeFns.push(fn);
    },
    readings: {
      observe: (fn) => {
        live();
        fnArg(fn, 'readings.observe');
        observe.push(fn);
        wants.observe = true;
      },
      annotate: (fn) => {
        live();
        fnArg(fn, 'readings.annotate');
        syncHooks.push({ kind: 'annotate', fn });
      },
      transform: (fn) => {
        live();
        fnArg(fn, 'readings.transform');
        guard.transform();
        syncHooks.push({ kind: 'transform', fn });
      },
      drop: (fn) => {
        live();
        fnArg(fn, 'readings.drop');
        guard.transform();
        syncHooks.push({ kind: 'drop', fn });
      },
    },
    onAlert: (fn) => {
      live();
      fnArg(fn, 'onAlert');
      alerts.push(fn);
      wants.alert = true;
    },
    onInspection: (fn) => {
      live();
      fnArg(fn, 'onInspection');
      inspections.push(fn);
      wants.inspection = true;
    },
    publish: (topic, payload, opts) => facade.publish(topic, payload, opts),
    command: (deviceId, payload) => facade.command(deviceId, payload),
    coapResource: (path, handlers) => {
      const methods = Object.keys(handlers ?? {});
      facade.coapResource(path, methods, async (m, req) => {
        const h = (handlers as Record<string, CoapHandler | undefined>)[m];
        if (!h) return { code: '4.05' };
        const t0 = performance.now();
        try {
          const r: PluginCoapReply = await withTimeout(
            Promise.resolve(h(pluginRequest(host.name, m, req))),
            host.budgetMs * 10,
            'CoAP handler timed out',
          );
          host.record('coap', performance.now() - t0);
          return r;
        } catch (err) {
          host.record('coap', performance.now() - t0, err);
          throw err;
        }
      });
    },
    driverType: (type) => facade.driverType(type),
    setTimeout: (fn, ms) => timer(fn, ms, false),
    setInterval: (fn, ms) => timer(fn, ms, true),
    kv: {
      get: async <T>(key: string) => facade.kvGet(key) as T | undefined,
      set: async (key, value) => facade.kvSet(key, value),
      delete: async (key) => facade.kvDelete(key),
      keys: async () => facade.kvKeys(),
    },
    metrics: {
      counter: (n, help, labels) => facade.counter(n, help, labels),
      gauge: (n, help, labels) => facade.gauge(n, help, labels),
    },
  };
  Object.freeze(ctx.readings);
  Object.freeze(ctx);

  const stop = async (timeoutMs: number): Promise<void> => {
    if (!open) return;
    open = false;
    abort.abort();
    for (const t of timers) clearTimeout(t);
    timers.clear();
    pending.close();
    try {
      if (timeoutMs > 0)
        await withTimeout(
          (async () => {
            for (const fn of closeFns.reverse()) await fn();
          })(),
          timeoutMs,
          `plugin ${host.name}: onClose did not finish within ${timeoutMs} ms`,
        );
    } catch (err) {
      host.log.warn({ err }, 'plugin onClose failed');
    } finally {
      facade.dispose();
      syncHooks.length = 0;
      observe.length = 0;
      alerts.length = 0;
      inspections.length = 0;
    }
  };

  try {
    await withTimeout(
      Promise.resolve().then(() => setup.call(exported, ctx)),
      host.cfg.setup_timeout_ms,
      `plugin ${host.name}: setup did not finish within ${host.cfg.setup_timeout_ms} ms`,
    );
  } catch (err) {
    await stop(0);
    throw err;
  }

  return {
    version: def.version,
    apiVersion: def.apiVersion,
    syncHooks,
    wants,
    observe(r) {
      for (const fn of observe) pending.call('observe', () => fn(r));
    },
    alert(a, id) {
      for (const fn of alerts) pending.call('alert', () => fn(a, id));
    },
    inspection(a, id) {
      for (const fn of inspections) pending.call('inspection', () => fn(a, id));
    },
    stop,
  };
}
