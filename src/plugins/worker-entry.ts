/**
 * Runs one plugin in a worker thread (isolation: worker). The plugin sees the same `ctx` as an
 * inline one; every call that reaches the gateway is a message to the host (worker.ts), which
 * checks capabilities and owns the budget: a hook that does not answer in time gets this whole
 * thread terminated.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import type { CoapHandler, PluginContext, PluginReading, PluginCoapReply } from './api.js';
import type { CallOp, FromWorker, ToWorker, WorkerInit } from './worker-protocol.js';

const port = parentPort!;
const init = workerData as WorkerInit;
const send = (m: FromWorker) => port.postMessage(m);

type Fn = (...args: never[]) => unknown;
const observe: ((r: PluginReading) => unknown)[] = [];
const alerts: ((a: Record<string, unknown>, id: string) => unknown)[] = [];
const inspections: ((a: Record<string, unknown>, id: string) => unknown)[] = [];
const coapHandlers = new Map<string, Partial<Record<string, CoapHandler>>>();
const closeFns: (() => unknown)[] = [];
const timers = new Set<NodeJS.Timeout>();
const abort = new AbortController();
const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let seq = 0;
let metricSeq = 0;
let setupFn: Fn | undefined;
let plugin: object | undefined;

function call(c: CallOp): Promise<unknown> {
  const id = ++seq;
  return new Promise((resolve, reject) => {
    calls.set(id, { resolve, reject });
    send({ t: 'call', id, call: c });
  });
}

const notInWorker = (what: string) => () => {
  throw Object.assign(
    new Error(
      `${what} is not available with isolation: worker (synchronous hooks cannot cross a thread; use isolation: inline)`,
    ),
    {
      code: 'EGW_PLUGIN_CAPABILITY',
    },
  );
};
const log = (level: 'debug' | 'info' | 'warn' | 'error') => (obj: object | string, msg?: string) =>
  send({
    t: 'log',
    level,
    obj: typeof obj === 'string' ? {} : safeClone(obj),
    msg: typeof obj === 'string' ? obj : msg,
  });

function safeClone(v: unknown): unknown {
  try {
    return structuredClone(v instanceof Error ? { err: { message: v.message, name: v.name } } : v);
  } catch {
    return {};
  }
}

function timer(fn: () => unknown, ms: number, repeat: boolean) {
  const t = (repeat ? setInterval : setTimeout)(
    () => {
      if (!repeat) timers.delete(t);
      const t0 = performance.now();
      const done = (err?: unknown) =>
        send({
          t: 'timer',
          ms: performance.now() - t0,
          ...(err ? { error: String((err as Error)?.message ?? err) } : {}),
        });
      try {
        Promise.resolve(fn()).then(() => done(), done);
      } catch (err) {
        done(err ?? 'threw');
      }
    },
    Math.max(1, Number(ms) || 0),
  );
  timers.add(t);
  return { cancel: () => (clearTimeout(t), timers.delete(t)) };
}

function makeCtx(config: unknown): PluginContext {
  return Object.freeze({
    name: init.name,
    config: config as Readonly<Record<string, unknown>>,
    log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    signal: abort.signal,
    onClose: (fn: () => unknown) => void closeFns.push(fn),
    readings: Object.freeze({
      observe: (fn: (r: PluginReading) => unknown) => {
        observe.push(fn);
        send({ t: 'hook', kind: 'observe' });
      },
      annotate: notInWorker('readings.annotate'),
      transform: notInWorker('readings.transform'),
      drop: notInWorker('readings.drop'),
    }),
    onAlert: (fn: (a: Record<string, unknown>, id: string) => unknown) => {
      alerts.push(fn);
      send({ t: 'hook', kind: 'alert' });
    },
    onInspection: (fn: (a: Record<string, unknown>, id: string) => unknown) => {
      inspections.push(fn);
      send({ t: 'hook', kind: 'inspection' });
    },
    publish: async (topic: string, payload: unknown, opts?: object) =>
      void (await call({ op: 'publish', topic, payload, opts })),
    command: async (deviceId: string, payload: unknown) => void (await call({ op: 'command', deviceId, payload })),
    coapResource: (path: string, handlers: Partial<Record<string, CoapHandler>>) => {
      coapHandlers.set(path, handlers);
      void call({ op: 'coap', path, methods: Object.keys(handlers) }).catch((err: Error) =>
        log('error')({ err }, 'coapResource refused'),
      );
    },
    driverType: notInWorker('driverType'),
    setTimeout: (fn: () => unknown, ms: number) => timer(fn, ms, false),
    setInterval: (fn: () => unknown, ms: number) => timer(fn, ms, true),
    kv: {
      get: (key: string) => call({ op: 'kvGet', key }),
      set: async (key: string, value: unknown) => void (await call({ op: 'kvSet', key, value })),
      delete: async (key: string) => void (await call({ op: 'kvDelete', key })),
      keys: () => call({ op: 'kvKeys' }) as Promise<string[]>,
    },
    metrics: {
      counter: (metric: string, help: string, labels: readonly string[] = []) => {
        const h = ++metricSeq;
        send({ t: 'metric', op: 'counter', h, metric, help, labels: [...labels] });
        return {
          inc: (l?: Record<string, string>, by?: number) => send({ t: 'metricUpdate', h, value: by ?? 1, labels: l }),
        };
      },
      gauge: (metric: string, help: string, labels: readonly string[] = []) => {
        const h = ++metricSeq;
        send({ t: 'metric', op: 'gauge', h, metric, help, labels: [...labels] });
        return { set: (value: number, l?: Record<string, string>) => send({ t: 'metricUpdate', h, value, labels: l }) };
      },
    },
  }) as unknown as PluginContext;
}

/** Runs every hook of a batch; answers once all settled (the host times the whole batch). */
async function runAll(fns: (() => unknown)[], id: number): Promise<void> {
  const errors: string[] = [];
  await Promise.all(
    fns.map(async (fn) => {
      try {
        await fn();
      } catch (err) {
        errors.push(String((err as Error)?.message ?? err).slice(0, 300));
      }
    }),
  );
  send({ t: 'done', id, errors });
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'setup': {
      Promise.resolve()
        .then(() => setupFn!.call(plugin, makeCtx(m.config) as never))
        .then(
          () => send({ t: 'ready' }),
          (err: Error) =>
            send({
              t: 'setupError',
              name: err?.name ?? 'Error',
              message: String(err?.message ?? err),
              ...(typeof (err as { code?: unknown })?.code === 'string'
                ? { code: (err as unknown as { code: string }).code }
                : {}),
            }),
        );
      return;
    }
    case 'ret': {
      const c = calls.get(m.id);
      calls.delete(m.id);
      if (!c) return;
      if (m.ok) c.resolve(m.value);
      else
        c.reject(Object.assign(new Error(m.error?.message ?? 'refused'), m.error?.code ? { code: m.error.code } : {}));
      return;
    }
    case 'readings':
      return void runAll(
        m.rs.flatMap((r) => observe.map((fn) => () => fn(Object.freeze(r)))),
        m.id,
      );
    case 'alert':
      return void runAll(
        alerts.map((fn) => () => fn(m.doc, m.key)),
        m.id,
      );
    case 'inspection':
      return void runAll(
        inspections.map((fn) => () => fn(m.doc, m.key)),
        m.id,
      );
    case 'coap': {
      const req = m.req as { path: string[] };
      const h = coapHandlers.get(req.path.join('/'))?.[m.method];
      if (!h) return send({ t: 'coapRes', id: m.id, reply: { code: '4.05' } });
      Promise.resolve()
        .then(() => h(m.req as never))
        .then(
          (reply: PluginCoapReply) => send({ t: 'coapRes', id: m.id, reply }),
          (err: Error) => send({ t: 'coapRes', id: m.id, reply: null, error: String(err?.message ?? err) }),
        );
      return;
    }
    case 'stop': {
      abort.abort();
      for (const t of timers) clearTimeout(t);
      void (async () => {
        for (const fn of closeFns.reverse()) {
          try {
            await fn();
          } catch {
            // the host logs nothing more: it is terminating us
          }
        }
        send({ t: 'stopped' });
      })();
      return;
    }
  }
});

try {
  const mod = (await import(`${pathToFileURL(init.file).href}?v=${init.generation}`)) as {
    default?: unknown;
    plugin?: unknown;
  };
  const def = (mod.default ?? mod.plugin) as Record<string, unknown> | undefined;
  if (typeof def === 'object' && def !== null && typeof def['setup'] === 'function') {
    plugin = def;
    setupFn = def['setup'] as Fn;
  }
  send({
    t: 'def',
    def:
      typeof def === 'object' && def !== null
        ? {
            name: def['name'],
            version: def['version'],
            apiVersion: def['apiVersion'],
            capabilities: safeClone(def['capabilities']),
            configSchema: safeClone(def['configSchema']),
            hasSetup: setupFn !== undefined,
          }
        : null,
  });
} catch (err) {
  send({ t: 'def', def: null, error: String((err as Error)?.message ?? err) });
}
