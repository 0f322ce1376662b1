import type { ConfigIssue } from '../config/load.js';
import type { QueuesSnapshot } from '../queue/types.js';

/** A JSON-serialisable document (what a management view returns). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue | undefined };

/** The uplink part of /mgmt/status. */
export interface UplinkStatus {
  state: 'online' | 'offline' | 'disabled';
  url: string | null;
  inflight: number;
}

/** OTA actions behind /mgmt/ota (GET state; POST ?action=check|apply). */
export interface OtaResource {
  state(): object;
  check(): Promise<object>;
  apply(): Promise<object>;
}

/**
 * The management resources capabilities fill, by name, with their types. Open: a capability adds
 * its own key with declaration merging, e.g.
 *
 *   declare module '../mgmt/registry.js' { interface MgmtResources { rollouts: () => RolloutView } }
 *
 * and registers it; the /mgmt resource reads it back with its type (no cast).
 */
export interface MgmtResources {
  /** /mgmt/queues, and the depths in /mgmt/status. */
  queues: () => QueuesSnapshot;
  /** The uplink part of /mgmt/status. */
  uplink: () => UplinkStatus;
  /** /mgmt/inspection (vision). */
  inspection: () => object;
  /** /mgmt/plugins. */
  plugins: () => object;
  ota: OtaResource;
  /** POST /mgmt/uplink/reconnect: reconnect now (backoff reset); returns the state. */
  uplinkReconnect: () => { state: string };
  /** /mgmt/alerts (analytics): the view, admin acknowledgement, change notifications. */
  alerts: AlertsResource;
  /** The code behind PUT /mgmt/config, for other writers (cloud desired config, gateway commands). */
  config: ConfigResource;
  /** Reload the site plugins (plugins module); the cloud's `plugins.reload` command. */
  pluginsReload: () => Promise<object>;
}

/** Who changed the config: an operator over /mgmt (or ctl), or the cloud (docs/uplink.md §Conflict rule). */
export type ConfigOrigin = 'local' | 'cloud';

export type ConfigApplyResult =
  | { ok: true; applied: string[]; restartRequired: string[]; file: string; backup: string | null }
  /** `status` is the CoAP response code PUT answers (4.00 invalid, 4.13 too large, 5.00, 5.01). */
  | { ok: false; status: string; error: string; errors: ConfigIssue[] };

/** Validate, persist and apply a whole config (YAML or JSON text), as PUT /mgmt/config does. */
export interface ConfigResource {
  apply(text: string, origin: ConfigOrigin): ConfigApplyResult;
  /** Called after every successful apply, whatever its origin. */
  onApplied(fn: (origin: ConfigOrigin) => void): () => void;
  /** sha256 (hex) of the running config with secrets redacted: what the reported state carries. */
  hash(): string;
}

/** Alerts behind /mgmt/alerts (GET, observe; POST ?id= acknowledges). */
export interface AlertsResource {
  view(): object;
  /** Undefined when no open alert has that id. */
  acknowledge(id: string): object | undefined;
  onChange(fn: () => void): () => void;
}

/** A read-only view served as GET /mgmt/{name} (read token), for capabilities without a fixed resource. */
export interface MgmtView {
  /** CoAP resource type for /.well-known/core, e.g. `edge.mgmt.alerts`. */
  rt?: string;
  get(): object;
}

/** What a capability builder returns for /mgmt. */
export interface MgmtEntries {
  resources?: Partial<MgmtResources>;
  views?: Readonly<Record<string, MgmtView>>;
}

const VIEW_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * The typed open registry behind /mgmt. The composition root registers each module's entries;
 * the management API reads them when a request arrives, so a module built after the CoAP server
 * still fills its resource.
 */
export class MgmtRegistry {
  private readonly resources: Partial<MgmtResources> = {};
  private readonly viewMap = new Map<string, MgmtView>();

  register<K extends keyof MgmtResources>(name: K, provider: MgmtResources[K]): void {
    if (this.resources[name] !== undefined) throw new Error(`management resource ${String(name)} registered twice`);
    this.resources[name] = provider;
  }

  get<K extends keyof MgmtResources>(name: K): MgmtResources[K] | undefined {
    return this.resources[name];
  }

  /** Adds GET /mgmt/{name}; names are checked (they become URI paths). */
  view(name: string, view: MgmtView): void {
    if (!VIEW_NAME.test(name)) throw new Error(`management view name ${JSON.stringify(name)} is not allowed`);
    if (this.viewMap.has(name)) throw new Error(`management view ${name} registered twice`);
    this.viewMap.set(name, view);
  }

  views(): [string, MgmtView][] {
    return [...this.viewMap];
  }

  /** Registers everything a capability returned. */
  add(entries: MgmtEntries): void {
    const res = entries.resources ?? {};
    for (const key of Object.keys(res) as (keyof MgmtResources)[]) {
      const provider = res[key];
      if (provider !== undefined) this.registerAny(key, provider);
    }
    for (const [name, v] of Object.entries(entries.views ?? {})) this.view(name, v);
  }

  /** `res[key]` is MgmtResources[K] for the same K; TypeScript cannot correlate the loop variable. */
  private registerAny<K extends keyof MgmtResources>(key: K, provider: MgmtResources[K]): void {
    this.register(key, provider);
  }
}
