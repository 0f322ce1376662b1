/**
 * The plugin API (docs/plugins.md). This file is the package entry `edge-gateway/plugin`: a
 * TypeScript plugin imports its types from here and gets autocompletion; a JavaScript plugin may
 * use `definePlugin` for the same through JSDoc. Only types and two error classes live here — no
 * gateway internals reach a plugin except through the `PluginContext` facade.
 */
import type { TSchema, Static } from '@sinclair/typebox';

/** The plugin API this gateway implements; a plugin's `apiVersion` range must include it (semver). */
export const PLUGIN_API_VERSION = '1.0.0';

export type ReadingValue = number | boolean | string | null;

/** A reading as plugins see it (the pipeline's Reading). */
export interface PluginReading {
  deviceId: string;
  /** Wall-clock ms (data only). */
  ts: number;
  values: Record<string, ReadingValue>;
  quality: 'good' | 'uncertain' | 'bad';
  source: string;
  units?: Record<string, string>;
}

export type Priority = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';

/** A plain JSON Schema object (a TypeBox schema is one too, and also types `ctx.config`). */
export type JsonSchema = { [key: string]: unknown };

/** What a plugin may do; the facade refuses anything not declared here (EGW_PLUGIN_CAPABILITY). */
export interface PluginCapabilities {
  /** Local topics it may publish, MQTT filter syntax (`reports/+`, `site/#`). */
  publish?: readonly string[];
  /** Devices it may command: ids or globs with `*` (`kiln-*`). */
  commands?: readonly string[];
  /** May add CoAP resources under /plugins/{name}/... */
  coapResources?: boolean;
  /** Driver types (`x-...`) it may register. */
  driverTypes?: readonly string[];
  /** May replace or drop readings (transform/drop hooks); observe and annotate need nothing. */
  transform?: boolean;
}

export interface PublishOptions {
  /** Uplink class (default: the queue's rules decide). */
  priority?: Priority;
  qos?: 0 | 1 | 2;
  retain?: boolean;
  /** Publish on the local broker (default true). */
  local?: boolean;
  /** Commit to the outbox for the cloud (default true). */
  uplink?: boolean;
  ttlS?: number;
}

export interface PluginCoapRequest {
  method: string;
  /** Segments after /plugins/{name}/. */
  path: string[];
  query: Record<string, string>;
  payload: Uint8Array;
  contentFormat: number | undefined;
}

export interface PluginCoapReply {
  /** e.g. "2.05". */
  code: string;
  payload?: string | Uint8Array;
  contentFormat?: number;
}

export type CoapHandler = (req: PluginCoapRequest) => PluginCoapReply | Promise<PluginCoapReply>;

/** A namespaced key-value store in the gateway's SQLite file; values are JSON (≤ 64 KiB each). */
export interface PluginKv {
  get<T = unknown>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
  keys(): Promise<string[]>;
}

export interface PluginLogger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

export interface PluginCounter {
  inc(labels?: Record<string, string>, by?: number): void;
}
export interface PluginGauge {
  set(value: number, labels?: Record<string, string>): void;
}

/** Metrics are named `edge_gateway_plugin_{name}_{metric}` (dashes become underscores). */
export interface PluginMetrics {
  counter(name: string, help: string, labelNames?: readonly string[]): PluginCounter;
  gauge(name: string, help: string, labelNames?: readonly string[]): PluginGauge;
}

/** A device-driver type provided by a plugin (inline isolation only). */
export interface PluginDriverType {
  /** `x-...`, declared in capabilities.driverTypes and listed under the entry's driver_types. */
  type: string;
  /** Schema of the entry's `options` (TypeBox). */
  optionsSchema?: TSchema | JsonSchema;
  create(entry: { id: string; options: unknown }, ctx: PluginDriverContext): PluginDriver;
}
export interface PluginDriverContext {
  readonly id: string;
  readonly signal: AbortSignal;
  emit(
    samples: readonly {
      deviceId?: string;
      values: Record<string, ReadingValue>;
      quality?: 'good' | 'uncertain' | 'bad';
    }[],
  ): void;
  setConnected(connected: boolean, reason?: string): void;
}
export interface PluginDriver {
  start(): Promise<void>;
  stop(): Promise<void>;
  devices?(): readonly string[];
}

/**
 * The curated facade a plugin receives in `setup(ctx)`. Everything registered through it is
 * removed when the plugin stops (reload, disable, quarantine, gateway shutdown).
 */
export interface PluginContext<C = Readonly<Record<string, unknown>>> {
  readonly name: string;
  /** Its own config, validated against `configSchema` (defaults applied) and deep-frozen. */
  readonly config: C;
  readonly log: PluginLogger;
  /** Aborted when the plugin stops. */
  readonly signal: AbortSignal;
  /** Runs when the plugin stops (bounded by plugins.shutdown_timeout_ms). */
  onClose(fn: () => void | Promise<void>): void;
  readonly readings: {
    /** After the reading was committed; may be async (bounded by the hook budget, never awaited by ingest). */
    observe(fn: (r: Readonly<PluginReading>) => void | Promise<void>): void;
    /** Synchronous, before commit: returned values are added to the reading (inline isolation only). */
    annotate(fn: (r: Readonly<PluginReading>) => Record<string, ReadingValue> | undefined | void): void;
    /** Synchronous, before commit: the reading to pass on, or null to drop (capability `transform`). */
    transform(fn: (r: Readonly<PluginReading>) => PluginReading | null): void;
    /** Synchronous, before commit: true drops the reading (capability `transform`). */
    drop(fn: (r: Readonly<PluginReading>) => boolean): void;
  };
  /** Alerts published on alerts/{deviceId} (parsed JSON). */
  onAlert(fn: (alert: Readonly<Record<string, unknown>>, deviceId: string) => void | Promise<void>): void;
  /** Vision results published on inspection/{cameraId}/result (parsed JSON). */
  onInspection(fn: (result: Readonly<Record<string, unknown>>, cameraId: string) => void | Promise<void>): void;
  /** Through the publisher (local broker and/or outbox); the topic must match capabilities.publish. */
  publish(topic: string, payload: string | Uint8Array | object, opts?: PublishOptions): Promise<void>;
  /** `commands/{deviceId}` through the command router; the device must match capabilities.commands. */
  command(deviceId: string, payload: unknown): Promise<void>;
  /** A CoAP resource at /plugins/{name}/{path} (capability coapResources). */
  coapResource(path: string, handlers: Partial<Record<'GET' | 'POST' | 'PUT' | 'DELETE', CoapHandler>>): void;
  /** A driver type `x-...` (capability driverTypes; inline only). */
  driverType(type: PluginDriverType): void;
  setTimeout(fn: () => void | Promise<void>, ms: number): { cancel(): void };
  setInterval(fn: () => void | Promise<void>, ms: number): { cancel(): void };
  readonly kv: PluginKv;
  readonly metrics: PluginMetrics;
}

export interface PluginDefinition<S extends TSchema | JsonSchema | undefined = TSchema | JsonSchema | undefined> {
  /** Same charset as the YAML entry name: `^[a-z][a-z0-9-]{0,31}$`. */
  name: string;
  /** Plugin version (shown in /mgmt/plugins). */
  version?: string;
  /** Semver range of the plugin API it was built for, e.g. `^1.0.0`. */
  apiVersion: string;
  capabilities?: PluginCapabilities;
  /** JSON Schema of its config; a TypeBox schema also types `ctx.config`. */
  configSchema?: S;
  /** Resolves when ready; throw PluginNotReadyError to be retried, PluginConfigError to be failed. */
  setup(
    ctx: PluginContext<S extends TSchema ? Readonly<Static<S>> : Readonly<Record<string, unknown>>>,
  ): void | Promise<void>;
}

/** Identity with types: `export default definePlugin({...})`. */
export function definePlugin<S extends TSchema | JsonSchema | undefined = undefined>(
  def: PluginDefinition<S>,
): PluginDefinition<S> {
  return def;
}

/**
 * "Not ready yet" (a peer is down, a file is not there yet): the plugin is retried with growing
 * backoff. Recognised by `name`, so a plugin may also throw its own error with this name.
 */
export class PluginNotReadyError extends Error {
  override readonly name = 'PluginNotReadyError';
}

/** "Bad config": the plugin is failed and not retried until reloaded. */
export class PluginConfigError extends Error {
  override readonly name = 'PluginConfigError';
}
