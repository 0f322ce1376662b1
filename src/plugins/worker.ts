import { Worker } from 'node:worker_threads';
import { GatewayError } from '../errors.js';
import type { PluginCounter, PluginGauge, PluginReading } from './api.js';
import { CapabilityGuard } from './capabilities.js';
import { Facade, pluginRequest } from './facade.js';
import type { Instance, RuntimeHost } from './host.js';
import { checkDefinition, validatePluginConfig } from './load.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol.js';

const ENTRY = new URL('./worker-entry.js', import.meta.url);
/** Readings per message to a worker: one postMessage per reading would cost more than the hook. */
const MAX_BATCH = 256;

/**
 * A plugin in its own worker thread (isolation: worker): heap-limited (resourceLimits), every
 * gateway call a message checked by the same Facade as inline plugins. Hook calls are batched
 * per event-loop turn; a batch not answered within the hook budget gets the worker terminated
 * (`host.crashed`: restart with backoff, then quarantine). An infinite loop or runaway allocation
 * in the plugin ends the same way and never blocks the gateway's thread.
 */
export async function startWorker(host: RuntimeHost): Promise<Instance> {
  const init: WorkerInit = { file: host.file, generation: host.generation, name: host.name };
  const heap = host.entry.max_heap_mb ?? host.cfg.worker_heap_mb;
  const worker = new Worker(ENTRY, {
    workerData: init,
    resourceLimits: { maxOldGenerationSizeMb: heap, maxYoungGenerationSizeMb: Math.max(4, Math.min(16, heap / 4)) },
    stdout: false,
    stderr: false,
  });
  let facade: Facade | undefined;
  const wants = { observe: false, alert: false, inspection: false };
  const pending = new Map<number, number>();
  const coapWaits = new Map<
    number,
    { resolve: (r: { code: string; payload?: string | Uint8Array }) => void; reject: (e: Error) => void }
  >();
  const metrics = new Map<number, PluginCounter | PluginGauge>();
  let seq = 0;
  let batch: PluginReading[] = [];
  let flushQueued = false;
  let sweep: NodeJS.Timeout | undefined;
  let state: 'starting' | 'running' | 'stopping' | 'dead' = 'starting';
  let version = '0.0.0';
  let apiVersion = '';
  let stoppedResolve: (() => void) | undefined;
  let settle: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const started = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));

  const post = (m: ToWorker) => {
    if (state === 'dead') return;
    try {
      worker.postMessage(m);
    } catch (err) {
      host.log.warn({ err }, 'cannot post to the plugin worker');
    }
  };
  const kill = (reason: string) => {
    if (state === 'dead') return;
    const wasRunning = state === 'running';
    state = 'dead';
    clearInterval(sweep);
    void worker.terminate();
    facade?.dispose();
    for (const w of coapWaits.values()) w.reject(new Error('plugin worker terminated'));
    coapWaits.clear();
    settle?.reject(new GatewayError('EGW_PLUGIN_SETUP', `plugin ${host.name}: worker ${reason}`));
    stoppedResolve?.();
    if (wasRunning) host.crashed(reason);
  };

  worker.on('error', (err) => kill(`failed: ${(err as { code?: string }).code ?? ''} ${err.message}`.trim()));
  worker.on('exit', (code) => kill(`exited (code ${code})`));
  worker.on('message', (m: FromWorker) => {
    switch (m.t) {
      case 'def': {
        try {
          if (!m.def)
            throw new GatewayError(
              'EGW_PLUGIN_LOAD',
              `plugin ${host.name}: cannot import ${host.file}: ${m.error ?? 'no plugin definition exported'}`,
            );
          const def = checkDefinition({ ...m.def, setup: m.def.hasSetup ? () => undefined : undefined }, host.name);
          version = def.version;
          apiVersion = def.apiVersion;
          const config = validatePluginConfig(host.name, def.configSchema, host.entry.config);
          facade = new Facade(host.name, host.deps, new CapabilityGuard(host.name, def.capabilities));
          post({ t: 'setup', config, budgetMs: host.budgetMs });
        } catch (err) {
          settle?.reject(err as Error);
          state = 'dead';
          void worker.terminate();
        }
        return;
      }
      case 'ready':
        state = 'running';
        settle?.resolve();
        return;
      case 'setupError': {
        const e = Object.assign(new Error(m.message), { name: m.name, ...(m.code ? { code: m.code } : {}) });
        settle?.reject(e);
        state = 'dead';
        facade?.dispose();
        void worker.terminate();
        return;
      }
      case 'hook':
        wants[m.kind] = true;
        return;
      case 'call':
        void handleCall(m.id, m.call);
        return;
      case 'log': {
        const obj = typeof m.obj === 'object' && m.obj !== null ? m.obj : {};
        host.log[m.level]({ ...obj, isolation: 'worker' }, String(m.msg ?? '').slice(0, 1000));
        return;
      }
      case 'metric': {
        try {
          metrics.set(
            m.h,
            m.op === 'counter'
              ? facade!.counter(m.metric, m.help, m.labels)
              : facade!.gauge(m.metric, m.help, m.labels),
          );
        } catch (err) {
          host.log.warn({ err }, 'plugin metric refused');
        }
        return;
      }
      case 'metricUpdate': {
        const h = metrics.get(m.h);
        try {
          if (h && 'inc' in h) h.inc(m.labels, m.value);
          else if (h) h.set(m.value, m.labels);
        } catch {
          // a wrong label set: the plugin's bug, not the gateway's
        }
        return;
      }
      case 'done': {
        const t0 = pending.get(m.id);
        if (t0 === undefined) return;
        pending.delete(m.id);
        const ms = performance.now() - t0;
        if (m.errors.length === 0) host.record('observe', ms);
        else for (const e of m.errors) host.record('observe', ms, new Error(e));
        return;
      }
      case 'timer':
        host.record('timer', m.ms, m.error === undefined ? undefined : new Error(m.error));
        return;
      case 'coapRes': {
        const w = coapWaits.get(m.id);
        coapWaits.delete(m.id);
        if (m.reply) w?.resolve(m.reply);
        else w?.reject(new Error(m.error ?? 'handler failed'));
        return;
      }
      case 'stopped':
        stoppedResolve?.();
        return;
    }
  });

  async function handleCall(id: number, c: Extract<FromWorker, { t: 'call' }>['call']): Promise<void> {
    try {
      if (!facade) throw new Error('not set up');
      let value: unknown;
      switch (c.op) {
        case 'publish':
          await facade.publish(c.topic, c.payload, c.opts);
          break;
        case 'command':
          await facade.command(c.deviceId, c.payload);
          break;
        case 'kvGet':
          value = facade.kvGet(c.key);
          break;
        case 'kvSet':
          facade.kvSet(c.key, c.value);
          break;
        case 'kvDelete':
          facade.kvDelete(c.key);
          break;
        case 'kvKeys':
          value = facade.kvKeys();
          break;
        case 'coap':
          facade.coapResource(c.path, c.methods, (method, req) => {
            const rid = ++seq;
            return new Promise((resolve, reject) => {
              const timer = setTimeout(() => {
                coapWaits.delete(rid);
                reject(new Error('plugin CoAP handler over budget'));
              }, host.budgetMs * 10);
              coapWaits.set(rid, {
                resolve: (r) => (clearTimeout(timer), resolve(r)),
                reject: (e) => (clearTimeout(timer), reject(e)),
              });
              post({
                t: 'coap',
                id: rid,
                method,
                req: { ...pluginRequest(host.name, method, req), path: c.path.split('/').filter(Boolean) },
              });
            });
          });
          break;
      }
      post({ t: 'ret', id, ok: true, value });
    } catch (err) {
      const code = (err as { code?: string }).code;
      post({ t: 'ret', id, ok: false, error: { message: (err as Error).message, ...(code ? { code } : {}) } });
    }
  }

  const flush = () => {
    flushQueued = false;
    if (state !== 'running' || batch.length === 0) return;
    const rs = batch;
    batch = [];
    send({ t: 'readings', id: 0, rs });
  };
  const send = (m: Extract<ToWorker, { t: 'readings' | 'alert' | 'inspection' }>) => {
    const id = ++seq;
    pending.set(id, performance.now());
    post({ ...m, id });
    sweep ??= setInterval(
      () => {
        const first = pending.values().next();
        if (!first.done && performance.now() - first.value > host.budgetMs) {
          host.timeout('observe', 'worker did not answer within its budget; terminating it');
          kill(`hook over budget (${host.budgetMs} ms)`);
        }
      },
      Math.max(5, Math.floor(host.budgetMs / 4)),
    );
    sweep.unref();
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(
            new GatewayError(
              'EGW_PLUGIN_SETUP',
              `plugin ${host.name}: setup did not finish within ${host.cfg.setup_timeout_ms} ms`,
            ),
          ),
        host.cfg.setup_timeout_ms,
      );
      started.then(
        () => (clearTimeout(t), resolve()),
        (e: unknown) => (clearTimeout(t), reject(e as Error)),
      );
    });
  } catch (err) {
    state = 'dead';
    facade?.dispose();
    await worker.terminate();
    throw err;
  }
  settle = undefined;

  return {
    get version() {
      return version;
    },
    get apiVersion() {
      return apiVersion;
    },
    syncHooks: [],
    wants,
    observe(r) {
      if (state !== 'running') return;
      if (pending.size >= host.cfg.max_inflight) return host.skipped('observe');
      batch.push(r);
      if (batch.length >= MAX_BATCH) flush();
      else if (!flushQueued) {
        flushQueued = true;
        setImmediate(flush);
      }
    },
    alert(doc, key) {
      if (state === 'running') send({ t: 'alert', id: 0, doc, key });
    },
    inspection(doc, key) {
      if (state === 'running') send({ t: 'inspection', id: 0, doc, key });
    },
    async stop(timeoutMs) {
      if (state === 'dead') return;
      state = 'stopping';
      clearInterval(sweep);
      if (timeoutMs > 0) {
        const stopped = new Promise<void>((r) => (stoppedResolve = r));
        post({ t: 'stop', timeoutMs });
        await Promise.race([stopped, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
      }
      state = 'dead';
      facade?.dispose();
      await worker.terminate();
    },
  };
}
