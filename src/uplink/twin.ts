import { createHash } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import type { ConfigIssue } from '../config/load.js';
import type { ConfigResource } from '../mgmt/registry.js';
import { MAX_CONFIG_COMMAND_BYTES } from './downlink-parse.js';
import type { AuditSink, CloudSend } from './downlink.js';
import type { ConfigSync, DownlinkStore } from './downlink-store.js';
import type { ReplyTopics } from './profiles/types.js';

/** What the reported state is made of; read at each comparison. */
export interface TwinSources {
  gatewayId: string;
  version: string;
  services(): Record<string, string>;
  uplink(): { state: string; url: string };
  ota(): object | null;
  plugins(): object | null;
  /** PUT /mgmt/config's code (absent when mgmt is off: desired config is then refused). */
  config(): ConfigResource | undefined;
}

export interface TwinOptions {
  /** The profile's reply topics (config/reported). */
  replies: ReplyTopics;
  /** Publishes the reported state the profile's way (`CloudProfile.reportState`); settles on PUBACK. */
  sendState(doc: Record<string, unknown>, msgId: string): Promise<void>;
  store: DownlinkStore;
  log: Logger;
  audit: AuditSink;
  send: CloudSend;
  sources: TwinSources;
  intervalMs: number;
}

/** The config/reported document (docs/uplink.md §Desired config). */
export interface ReportedDoc {
  version: number | null;
  status: 'applied' | 'refused' | 'stale' | 'current' | 'overridden';
  errors: ConfigIssue[];
  /** Why a document was refused before it was read (EGW_DOWNLINK_DENIED: not in the allow-list). */
  code?: string;
  applied?: string[];
  restartRequired?: string[];
  config: ConfigSync;
}

export const STATE_SCHEMA = 1;

/** msg-id of a state or reported document: derived from its content, so a copy sent again has the same id. */
function contentId(kind: string, text: string): string {
  return `${kind}-${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
}
const SYNC_KEY = 'config';
const REPORTED_KEY = 'reported';

/**
 * Reported and desired state. `{prefix}/state` (retained) is rebuilt every `intervalMs` and
 * published only when it differs from the last one the cloud acknowledged. `{prefix}/config/desired`
 * is applied through PUT /mgmt/config's code, under the versioned conflict rule:
 *
 *   a desired document is applied only when its `version` is greater than every desired version
 *   seen before; a local edit (PUT /mgmt/config, ctl) applies at once and holds until the cloud
 *   sends a greater version. Equal or lower versions (the retained document redelivered at every
 *   reconnect, a replay) change nothing and are reported as "current"/"overridden"/"stale".
 */
export class Twin {
  private sync: ConfigSync;
  private lastSentKey = '';
  private sending = false;
  private timer: NodeJS.Timeout | undefined;
  private unhook: (() => void) | undefined;

  constructor(private readonly o: TwinOptions) {
    this.sync = o.store.getSync<ConfigSync>(SYNC_KEY) ?? { revision: 0, origin: 'file', desiredVersion: 0 };
  }

  get configSync(): Readonly<ConfigSync> {
    return this.sync;
  }

  start(): void {
    // Local edits move the revision and the origin (the conflict rule's "local edit after the last desired version").
    this.unhook = this.o.sources.config()?.onApplied((origin) => {
      if (origin === 'local') this.setSync({ ...this.sync, revision: this.sync.revision + 1, origin: 'local' });
    });
    this.timer = setInterval(() => void this.publishState(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.unhook?.();
  }

  /** After every (re)connect: the state if it changed, the last reported doc if it was never acknowledged. */
  async onConnect(): Promise<void> {
    await this.publishState();
    const rep = this.o.store.getSync<{ doc: ReportedDoc; sent: boolean }>(REPORTED_KEY);
    if (rep && !rep.sent) await this.report(rep.doc);
  }

  state(): Record<string, unknown> {
    const s = this.o.sources;
    return {
      schema: STATE_SCHEMA,
      gatewayId: s.gatewayId,
      version: s.version,
      config: { ...this.sync, hash: s.config()?.hash() ?? null },
      services: s.services(),
      uplink: s.uplink(),
      ota: s.ota(),
      plugins: s.plugins(),
    };
  }

  /** Publishes the state (retained) when it differs from the last acknowledged one. */
  async publishState(): Promise<void> {
    if (this.sending) return;
    const state = this.state();
    const key = JSON.stringify(state);
    if (key === this.lastSentKey) return;
    this.sending = true;
    try {
      await this.o.sendState(state, contentId('s', key));
      this.lastSentKey = key;
    } catch {
      /* offline: compared again at the next tick or connect */
    } finally {
      this.sending = false;
    }
  }

  /** One `{prefix}/config/desired` document: `{"version": N, "config": {...}}` or `{"version": N, "yaml": "..."}`. */
  async desired(payload: Buffer, profileVersion?: number): Promise<void> {
    const refuse = (version: number | null, errors: ConfigIssue[]) => {
      this.audit('invalid', 'EGW_DOWNLINK_INVALID', errors.map((e) => `${e.path}: ${e.message}`).join('; '));
      return this.report({ version, status: 'refused', errors, config: this.sync });
    };
    if (payload.length > MAX_CONFIG_COMMAND_BYTES)
      return refuse(null, [{ path: '', message: `desired config larger than ${MAX_CONFIG_COMMAND_BYTES} bytes` }]);
    let doc: unknown;
    try {
      doc = JSON.parse(payload.toString('utf8'));
    } catch {
      return refuse(null, [{ path: '', message: 'desired config is not JSON' }]);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
      return refuse(null, [
        { path: '', message: 'desired config must be a JSON object {"version": N, "config": {...}}' },
      ]);
    const d = doc as Record<string, unknown>;
    // A profile with a versioned desired document (Azure's twin $version) gives the version beside it.
    const version = d['version'] ?? profileVersion;
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)
      return refuse(null, [{ path: 'version', message: 'must be an integer ≥ 1' }]);
    const text =
      typeof d['yaml'] === 'string'
        ? d['yaml']
        : typeof d['config'] === 'object' && d['config'] !== null && !Array.isArray(d['config'])
          ? JSON.stringify(d['config'])
          : undefined;
    if (text === undefined)
      return refuse(version, [
        { path: 'config', message: 'give the whole config as "config" (object) or "yaml" (string)' },
      ]);
    if (version <= this.sync.desiredVersion) {
      // The conflict rule: only a greater version overrides what runs (including a local edit).
      const status =
        version < this.sync.desiredVersion ? 'stale' : this.sync.origin === 'local' ? 'overridden' : 'current';
      this.audit(
        'ignored',
        'ok',
        `desired version ${version}: ${status} (last desired ${this.sync.desiredVersion}, origin ${this.sync.origin})`,
      );
      return this.report({ version, status, errors: [], config: this.sync });
    }
    const config = this.o.sources.config();
    // The version is consumed whatever the outcome: a refused document is not retried; the cloud sends a new version.
    this.setSync({ ...this.sync, desiredVersion: version });
    if (!config)
      return refuse(version, [
        { path: '', message: 'the management API (mgmt.enabled) is off: config cannot be applied' },
      ]);
    const r = config.apply(text, 'cloud');
    if (!r.ok) return refuse(version, r.errors);
    this.setSync({ ...this.sync, revision: this.sync.revision + 1, origin: 'cloud' });
    this.audit('ok', 'ok', `desired version ${version} applied`);
    this.o.log.info({ version, applied: r.applied, restartRequired: r.restartRequired }, 'desired config applied');
    await this.report({
      version,
      status: 'applied',
      errors: [],
      applied: r.applied,
      restartRequired: r.restartRequired,
      config: this.sync,
    });
    void this.publishState();
  }

  /**
   * A desired document the downlink allow-list refused before reading it: reported like every other
   * outcome (kept and sent again at the next connect if the cloud does not acknowledge it now).
   */
  denied(code: string, error: string): Promise<void> {
    return this.report({
      version: null,
      status: 'refused',
      code,
      errors: [{ path: '', message: error }],
      config: this.sync,
    });
  }

  /** A config.apply gateway command moved the config: same bookkeeping as a desired apply, no version. */
  noteCloudApply(): void {
    this.setSync({ ...this.sync, revision: this.sync.revision + 1, origin: 'cloud' });
  }

  private async report(doc: ReportedDoc): Promise<void> {
    this.o.store.putSync(REPORTED_KEY, { doc, sent: false });
    if (doc.status === 'refused')
      this.o.log.warn({ version: doc.version, errors: doc.errors }, 'desired config refused');
    try {
      const text = JSON.stringify(doc);
      await this.o.send(this.o.replies.configReported(), text, { retain: true, msgId: contentId('c', text) });
      this.o.store.putSync(REPORTED_KEY, { doc, sent: true });
    } catch (err) {
      this.o.log.warn(
        { err: (err as Error).message, status: doc.status },
        'config/reported not sent now; sent again at the next connect',
      );
    }
  }

  private setSync(s: ConfigSync): void {
    this.sync = s;
    this.o.store.putSync(SYNC_KEY, s);
  }

  private audit(outcome: string, code: string, detail: string): void {
    this.o.audit.record({ source: 'cloud', method: 'MQTT', resource: 'config/desired', outcome, code, detail });
  }
}
