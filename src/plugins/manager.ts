import type { LocalBus } from '../capability/types.js';
import { GatewayError } from '../errors.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { IngestMeta, Pipeline } from '../pipeline/pipeline.js';
import { isValidDeviceId, VALUE_NAME_PATTERN, type Reading, type ReadingValue } from '../pipeline/reading.js';
import { PLUGIN_API_VERSION, type PluginReading } from './api.js';
import type { PluginEntry, PluginsConfig } from './config.js';
import type { FacadeDeps } from './facade.js';
import { PluginHost } from './host.js';
import { isThenable } from './inline.js';
import { resolvePluginFile } from './load.js';
import { CrashLoopMarker } from './safe-mode.js';

export type PluginAction = 'reload' | 'disable' | 'release';

export interface PluginManagerOptions {
  config: PluginsConfig;
  dataDir: string;
  pipeline: Pipeline;
  broker: LocalBus | undefined;
  deps: FacadeDeps;
  log: Logger;
  /** Reads the plugin entries as they are now in the config file (reload takes new config); undefined: keep. */
  reread?: () => { config: PluginsConfig };
}

/**
 * The plugins service: one host per configured entry (in YAML order), the pipeline stage that
 * runs their synchronous hooks, the fan-out of committed readings, alerts and inspection results
 * to their async hooks, safe mode and the /mgmt/plugins view and actions.
 */
export class PluginManager implements Service {
  readonly name = 'plugins';
  private hosts: PluginHost[] = [];
  private removeStage: (() => void) | undefined;
  private safeMode = false;
  private readonly marker: CrashLoopMarker;
  private readonly onReading = (r: Reading, _meta: IngestMeta) => this.observe(r);

  constructor(private readonly opts: PluginManagerOptions) {
    this.marker = new CrashLoopMarker(opts.dataDir);
    this.hosts = opts.config.plugins.map((e) => this.host(e, opts.config));
    // Subscribed at build: the broker takes internal subscriptions before it starts.
    opts.broker?.subscribe('alerts/+', (topic, payload) => this.fanOut('alert', topic.slice(7), payload));
    opts.broker?.subscribe('inspection/+/result', (topic, payload) =>
      this.fanOut('inspection', topic.split('/')[1] ?? '', payload),
    );
  }

  async start(): Promise<void> {
    const sm = this.opts.config.safe_mode;
    if (sm.enabled) {
      const before = this.marker.begin(sm.healthy_after_s);
      if (before >= sm.crash_starts) {
        this.safeMode = true;
        this.opts.log.error(
          { code: 'EGW_PLUGIN_SAFE_MODE', startsWithoutHealthyRun: before },
          `SAFE MODE: the gateway started ${before} times in a row without running ${sm.healthy_after_s} s; no plugin is loaded this time. Fix or disable the faulty plugin; a healthy run clears this.`,
        );
      }
    }
    this.removeStage = this.opts.pipeline.addStage('plugins', (r) => this.runSync(r));
    this.opts.pipeline.on('reading', this.onReading);
    if (this.safeMode) {
      for (const h of this.hosts) h.skipForSafeMode();
      return;
    }
    // In YAML order; a plugin still retrying does not hold the start.
    for (const h of this.hosts) await h.start();
  }

  async stop(): Promise<void> {
    this.removeStage?.();
    this.opts.pipeline.off('reading', this.onReading);
    for (const h of [...this.hosts].reverse()) await h.stop();
    this.marker.clean();
  }

  health(): ServiceHealth {
    const count = (s: string) => this.hosts.filter((h) => h.state === s).length;
    return {
      ok: true,
      state: this.safeMode ? 'safe-mode' : 'running',
      detail: {
        safeMode: this.safeMode,
        ready: count('ready'),
        failed: count('failed'),
        quarantined: count('quarantined'),
      },
    };
  }

  view(): Record<string, unknown> {
    return {
      enabled: true,
      apiVersion: PLUGIN_API_VERSION,
      safeMode: this.safeMode,
      ...(this.safeMode
        ? { note: 'safe mode: the gateway crash-looped, no plugin was loaded at this start (docs/plugins.md)' }
        : {}),
      plugins: this.hosts.map((h) => h.view()),
    };
  }

  /** /mgmt/plugins POST and `ctl plugins`: undefined when no plugin has that name. */
  async act(action: PluginAction, name: string): Promise<Record<string, unknown> | undefined> {
    let h = this.hosts.find((x) => x.name === name);
    if (action === 'reload') {
      const fresh = this.opts.reread?.().config ?? this.opts.config;
      const entry = fresh.plugins.find((e) => e.name === name);
      if (!h && !entry) return undefined;
      if (!entry)
        throw new GatewayError('EGW_PLUGIN_LOAD', `plugin ${name} is no longer in the config file; disable it instead`);
      const file = this.file(entry);
      if (!h) {
        h = this.host(entry, this.opts.config);
        this.hosts.push(h);
      }
      await h.reload(entry, file);
    } else if (!h) return undefined;
    else if (action === 'disable') await h.disable();
    else await h.release();
    return h.view();
  }

  /** Hosts in order (tests, bench). */
  list(): readonly PluginHost[] {
    return this.hosts;
  }

  private host(e: PluginEntry, cfg: PluginsConfig): PluginHost {
    return new PluginHost(e, cfg, this.file(e), this.opts.deps, () => undefined);
  }

  private file(e: PluginEntry): string {
    try {
      return resolvePluginFile(this.opts.config.dir, e.name, e.path);
    } catch {
      // Reported as EGW_PLUGIN_LOAD when the host imports it.
      return e.path ?? `${this.opts.config.dir}/${e.name}`;
    }
  }

  /** The pipeline stage: every ready plugin's annotate/transform/drop hooks in YAML order, each guarded. */
  private runSync(reading: Reading): Reading | null {
    let r = reading;
    for (const h of this.hosts) {
      if (!h.ready) continue;
      const hooks = h.instance!.syncHooks;
      for (let i = 0; i < hooks.length; i++) {
        const hook = hooks[i]!;
        const t0 = performance.now();
        let out: unknown;
        try {
          out = hook.fn(r as PluginReading);
        } catch (err) {
          h.record(hook.kind, performance.now() - t0, err);
          continue;
        }
        const ms = performance.now() - t0;
        if (isThenable(out)) {
          h.record(hook.kind, ms, new Error(`${hook.kind} hook returned a promise; it must be synchronous`));
          continue;
        }
        if (hook.kind === 'drop') {
          h.record('drop', ms);
          if (out === true) return null;
        } else if (hook.kind === 'annotate') {
          if (out === undefined || out === null) {
            h.record('annotate', ms);
            continue;
          }
          const values = checkValues(out);
          if (!values) {
            h.record('annotate', ms, new Error('annotate must return { name: number|boolean|string|null }'));
            continue;
          }
          h.record('annotate', ms);
          r = { ...r, values: { ...r.values, ...values } };
        } else {
          if (out === null) {
            h.record('transform', ms);
            return null;
          }
          const next = checkReading(out);
          if (!next) {
            h.record('transform', ms, new Error('transform must return a reading (deviceId, ts, values) or null'));
            continue;
          }
          h.record('transform', ms);
          r = next;
        }
      }
    }
    return r;
  }

  /** After commit: one frozen view shared by every observing plugin. */
  private observe(r: Reading): void {
    let frozen: Readonly<PluginReading> | undefined;
    for (const h of this.hosts) {
      if (!h.ready || !h.instance!.wants.observe) continue;
      frozen ??= Object.freeze({ ...r, values: Object.freeze({ ...r.values }) });
      h.instance!.observe(frozen);
    }
  }

  private fanOut(kind: 'alert' | 'inspection', id: string, payload: Buffer): void {
    const wanted = this.hosts.filter((h) => h.ready && h.instance!.wants[kind]);
    if (wanted.length === 0) return;
    let doc: unknown;
    try {
      doc = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    if (typeof doc !== 'object' || doc === null) return;
    const frozen = Object.freeze(doc as Record<string, unknown>);
    for (const h of wanted) {
      if (kind === 'alert') h.instance?.alert(frozen, id);
      else h.instance?.inspection(frozen, id);
    }
  }
}

const MAX_STRING = 1024;

function checkValues(v: unknown): Record<string, ReadingValue> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const out: Record<string, ReadingValue> = {};
  for (const [k, x] of Object.entries(v)) {
    if (!VALUE_NAME_PATTERN.test(k)) return undefined;
    if (
      x === null ||
      typeof x === 'boolean' ||
      (typeof x === 'number' && Number.isFinite(x)) ||
      (typeof x === 'string' && x.length <= MAX_STRING)
    )
      out[k] = x;
    else return undefined;
  }
  return out;
}

/** A transform's result crosses back into the pipeline: checked like a boundary (DESIGN: identifiers). */
function checkReading(v: unknown): Reading | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Partial<Reading>;
  if (typeof o.deviceId !== 'string' || !isValidDeviceId(o.deviceId)) return undefined;
  if (typeof o.ts !== 'number' || !Number.isFinite(o.ts)) return undefined;
  const values = checkValues(o.values);
  if (!values) return undefined;
  const quality = o.quality === 'good' || o.quality === 'uncertain' || o.quality === 'bad' ? o.quality : 'good';
  return {
    deviceId: o.deviceId,
    ts: o.ts,
    values,
    quality,
    source: o.source ?? 'plugin',
    ...(o.units ? { units: o.units } : {}),
  };
}
