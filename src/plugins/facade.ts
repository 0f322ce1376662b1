import { Counter, Gauge, type Registry } from 'prom-client';
import { GatewayError } from '../errors.js';
import type { CoapReply, CoapRequest, Resource } from '../coap/router.js';
import type { Logger } from '../log/logger.js';
import type { Publisher } from '../publisher/types.js';
import { isValidDeviceId } from '../pipeline/reading.js';
import { PRIORITIES } from '../queue/types.js';
import type {
  CoapHandler,
  PluginCoapReply,
  PluginCounter,
  PluginDriverType,
  PluginGauge,
  PublishOptions,
} from './api.js';
import type { CapabilityGuard } from './capabilities.js';
import type { PluginDriverBridge } from './drivers.js';
import type { PluginStore } from './store.js';

/** What the plugins module hands every facade (seams of earlier modules; absent when that module is off). */
export interface FacadeDeps {
  publisher: Publisher | undefined;
  /** Adds a CoAP resource to the server (coap module); absent when CoAP is off. */
  coap: ((r: Resource) => () => void) | undefined;
  store: PluginStore;
  metrics: Registry;
  drivers: PluginDriverBridge;
  log: Logger;
}

const METRIC_NAME = /^[a-z_][a-z0-9_]{0,63}$/;
const COAP_SEGMENT = /^[A-Za-z0-9_.~-]{1,64}$/;

/**
 * The main-thread side of one plugin instance's `ctx`: every operation that reaches the gateway,
 * capability-checked, with every registration remembered so `dispose()` removes it. Inline
 * plugins call it directly; worker plugins through messages (worker.ts).
 */
export class Facade {
  private readonly removals: (() => void)[] = [];
  private disposed = false;

  constructor(
    readonly name: string,
    private readonly deps: FacadeDeps,
    private readonly guard: CapabilityGuard,
  ) {}

  async publish(topic: string, payload: unknown, opts: PublishOptions = {}): Promise<void> {
    this.live();
    this.guard.publish(topic);
    if (opts.priority !== undefined && !PRIORITIES.includes(opts.priority))
      throw new GatewayError(
        'EGW_PLUGIN_HOOK',
        `plugin ${this.name}: priority must be one of ${PRIORITIES.join(', ')}`,
      );
    const body = typeof payload === 'string' || payload instanceof Uint8Array ? payload : JSON.stringify(payload);
    if (body === undefined) throw new GatewayError('EGW_PLUGIN_HOOK', `plugin ${this.name}: payload is not JSON`);
    const publisher = this.need(this.deps.publisher, 'the publisher');
    await publisher.publish({
      topic,
      payload: body,
      qos: opts.qos ?? 1,
      retain: opts.retain ?? false,
      source: 'plugin',
      labels: [`plugin:${this.name}`],
      ...(opts.priority ? { priority: opts.priority } : {}),
      ...(opts.ttlS !== undefined ? { ttlS: opts.ttlS } : {}),
      ...(opts.local !== undefined ? { local: opts.local } : {}),
      ...(opts.uplink !== undefined ? { uplink: opts.uplink } : {}),
    });
  }

  /** `commands/{deviceId}` on the local broker: the command router hands it to the driver owning the device. */
  async command(deviceId: string, payload: unknown): Promise<void> {
    this.live();
    if (typeof deviceId !== 'string' || !isValidDeviceId(deviceId))
      throw new GatewayError('EGW_PLUGIN_CAPABILITY', `plugin ${this.name}: device id not allowed`);
    this.guard.command(deviceId);
    const body = JSON.stringify(payload);
    if (body === undefined) throw new GatewayError('EGW_PLUGIN_HOOK', `plugin ${this.name}: command is not JSON`);
    await this.need(this.deps.publisher, 'the publisher').publish({
      topic: `commands/${deviceId}`,
      payload: body,
      qos: 1,
      uplink: false,
      source: 'plugin',
    });
  }

  kvGet(key: string): unknown {
    return this.deps.store.get(this.name, key);
  }
  kvSet(key: string, value: unknown): void {
    this.live();
    this.deps.store.set(this.name, key, value);
  }
  kvDelete(key: string): void {
    this.deps.store.delete(this.name, key);
  }
  kvKeys(): string[] {
    return this.deps.store.keys(this.name);
  }

  /** `/plugins/{name}/{path}`; `call` runs the plugin's handler (inline or across the worker boundary). */
  coapResource(
    path: string,
    methods: readonly string[],
    call: (method: string, req: CoapRequest) => Promise<PluginCoapReply>,
  ): void {
    this.live();
    this.guard.coap();
    const segs = path.split('/').filter((s) => s.length > 0);
    if (segs.length === 0 || segs.length > 8 || !segs.every((s) => COAP_SEGMENT.test(s)))
      throw new GatewayError(
        'EGW_PLUGIN_CAPABILITY',
        `plugin ${this.name}: CoAP path ${JSON.stringify(path)} not allowed`,
      );
    const add = this.need(this.deps.coap, 'the CoAP server');
    const handlers: Resource['methods'] = {};
    for (const m of methods) {
      if (m !== 'GET' && m !== 'POST' && m !== 'PUT' && m !== 'DELETE') continue;
      handlers[m] = async (req: CoapRequest): Promise<CoapReply> => {
        try {
          const r = await call(m, req);
          return {
            code: r.code,
            ...(r.payload !== undefined ? { payload: Buffer.from(r.payload) } : {}),
            ...(r.contentFormat !== undefined ? { contentFormat: r.contentFormat } : {}),
          };
        } catch (err) {
          this.deps.log.warn({ err, plugin: this.name }, 'plugin CoAP handler failed');
          return { code: '5.00', payload: 'plugin handler failed' };
        }
      };
    }
    this.removals.push(
      add({ path: `/plugins/${this.name}/${segs.join('/')}`, rt: `edge.plugin.${this.name}`, methods: handlers }),
    );
  }

  driverType(type: PluginDriverType): void {
    this.live();
    if (typeof type?.type !== 'string' || typeof type.create !== 'function')
      throw new GatewayError('EGW_PLUGIN_CAPABILITY', `plugin ${this.name}: driverType needs type and create`);
    this.guard.driverType(type.type);
    this.removals.push(this.deps.drivers.provide(this.name, type));
  }

  counter(metric: string, help: string, labelNames: readonly string[] = []): PluginCounter {
    const c = new Counter({
      name: this.metricName(metric),
      help: String(help).slice(0, 200),
      labelNames: [...labelNames],
      registers: [this.deps.metrics],
    });
    return { inc: (labels, by) => (labels ? c.inc(labels, by ?? 1) : c.inc(by ?? 1)) };
  }

  gauge(metric: string, help: string, labelNames: readonly string[] = []): PluginGauge {
    const g = new Gauge({
      name: this.metricName(metric),
      help: String(help).slice(0, 200),
      labelNames: [...labelNames],
      registers: [this.deps.metrics],
    });
    return { set: (value, labels) => (labels ? g.set(labels, value) : g.set(value)) };
  }

  /** Removes everything this instance registered (CoAP resources, driver types, metrics). Idempotent. */
  dispose(): void {
    this.disposed = true;
    for (const r of this.removals.splice(0).reverse()) {
      try {
        r();
      } catch (err) {
        this.deps.log.warn({ err, plugin: this.name }, 'removing a plugin registration failed');
      }
    }
  }

  private metricName(metric: string): string {
    this.live();
    if (!METRIC_NAME.test(metric))
      throw new GatewayError(
        'EGW_PLUGIN_CAPABILITY',
        `plugin ${this.name}: metric name ${JSON.stringify(metric)} not allowed`,
      );
    const full = `edge_gateway_plugin_${this.name.replace(/-/g, '_')}_${metric}`;
    this.removals.push(() => this.deps.metrics.removeSingleMetric(full));
    return full;
  }

  private live(): void {
    if (this.disposed) throw new GatewayError('EGW_PLUGIN_HOOK', `plugin ${this.name} is stopped`);
  }

  private need<T>(v: T | undefined, what: string): T {
    if (v === undefined)
      throw new GatewayError('EGW_PLUGIN_CAPABILITY', `plugin ${this.name}: ${what} is not enabled on this gateway`);
    return v;
  }
}

/** Turns a CoAP request into what a plugin handler sees (no peer address: plugins get no network identity). */
export function pluginRequest(name: string, method: string, req: CoapRequest) {
  // The management token never reaches a plugin.
  const query = { ...req.query };
  delete query['token'];
  return {
    method,
    path: req.path.slice(2),
    query,
    payload: new Uint8Array(req.payload),
    contentFormat: req.contentFormat,
    plugin: name,
  };
}

export type { CoapHandler };
