import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { Publisher } from '../publisher/types.js';
import type { OtaConfig } from './config.js';
import { download, DownloadError, fetchSmall } from './download.js';
import { faultPoint } from './fault.js';
import {
  checkApplicable,
  currentTarget,
  ManifestError,
  MAX_ENVELOPE_BYTES,
  trustedKey,
  verifyEnvelope,
  type Manifest,
  type TrustedKey,
} from './manifest.js';
import {
  activate,
  clearRollback,
  clearTrial,
  linkedVersion,
  pruneReleases,
  readRollback,
  readTrial,
  releaseDir,
  rollBack,
} from './releases.js';
import {
  loadState,
  LWM2M_RESULT,
  lwm2mState,
  saveState,
  type OtaPhase,
  type OtaResult,
  type OtaState,
} from './state.js';
import { UnpackError, unpackRelease } from './unpack.js';

export interface OtaClientOptions {
  config: OtaConfig;
  dataDir: string;
  gatewayId: string;
  /** The running release's version. */
  version: string;
  log: Logger;
  publisher?: Publisher;
  /** Gateway health (the same meaning as /mgmt/health). */
  health: () => { ok: boolean };
  /** Uplink online (true/false), or null when there is no uplink. */
  uplinkOnline: () => boolean | null;
  /** Exits so systemd starts `current` (the new release). */
  requestRestart: (reason: string) => void;
  /** Overrides config.install_root and the derived root (tests). */
  installRoot?: string;
  /** Free bytes on the data dir's file system (tests). */
  freeBytes?: (path: string) => number;
}

/** The /mgmt/ota document. */
export interface OtaView extends OtaState {
  running: string;
  /** LwM2M object 5: State (resource 3) and Update Result (resource 5). */
  lwm2m: { state: 0 | 1 | 2 | 3; result: number };
  channel: string | null;
  installRoot: string | null;
  /** Last check: what the channel offered and whether it applies here. */
  lastCheck: { at: number; version: string | null; applicable: boolean; reason: string | null } | null;
}

export interface CheckOutcome {
  version: string | null;
  applicable: boolean;
  reason: string | null;
}

const RESULT_OF_REFUSAL: Record<string, OtaResult> = {
  signature: 'integrity_failure',
  envelope: 'integrity_failure',
  format: 'unsupported_package',
  target: 'unsupported_package',
};

/** Where the running code sits in an A/B layout: ROOT/releases/<v>/dist/src/ota/client.js → ROOT. */
export function derivedInstallRoot(): string | null {
  const release = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const releases = dirname(release);
  return basename(releases) === 'releases' ? dirname(releases) : null;
}

/**
 * The OTA client (docs/ota.md): periodic and on-demand checks, signature before any bundle byte,
 * resumable download, unpack into releases/<v>, activation, and on the next start the trial: the
 * release commits after `health_window_s` of health, or rolls back. Rollbacks of releases that
 * never get that far are decided by systemd/edge-gateway-trial, not by this code.
 */
export class OtaClient implements Service {
  readonly name = 'ota';
  private state: OtaState;
  private readonly statePath: string;
  private readonly keys: TrustedKey[];
  private readonly root: string | null;
  private busy: Promise<unknown> | null = null;
  private checkTimer: NodeJS.Timeout | undefined;
  private trialTimer: NodeJS.Timeout | undefined;
  private lastCheck: OtaView['lastCheck'] = null;
  private readonly listeners = new Set<(v: OtaView) => void>();

  constructor(private readonly opts: OtaClientOptions) {
    this.statePath = join(opts.dataDir, 'ota-state.json');
    this.state = loadState(this.statePath);
    this.keys = opts.config.trusted_keys.map(trustedKey);
    this.root = opts.installRoot ?? (opts.config.install_root || derivedInstallRoot());
  }

  async start(): Promise<void> {
    mkdirSync(this.opts.dataDir, { recursive: true });
    this.settleAfterStart();
    if (this.opts.config.channel_url && this.keys.length > 0) this.scheduleCheck(true);
  }

  async stop(): Promise<void> {
    clearTimeout(this.checkTimer);
    clearInterval(this.trialTimer);
    this.checkTimer = undefined;
    this.trialTimer = undefined;
  }

  health(): ServiceHealth {
    return { ok: true, state: this.state.phase, detail: { version: this.state.version, result: this.state.result } };
  }

  view(): OtaView {
    return {
      ...this.state,
      running: this.opts.version,
      lwm2m: { state: lwm2mState(this.state.phase), result: LWM2M_RESULT[this.state.result] },
      channel: this.opts.config.channel_url || null,
      installRoot: this.root,
      lastCheck: this.lastCheck,
    };
  }

  /** Observers of /mgmt/ota (RFC 7641 notifications). */
  onChange(fn: (v: OtaView) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Fetches and verifies the manifest; says whether it applies here. Never downloads. */
  async check(): Promise<CheckOutcome> {
    try {
      const { manifest, hash } = await this.fetchManifest();
      const out = this.applicability(manifest, hash);
      this.lastCheck = { at: Date.now(), version: manifest.version, applicable: out.applicable, reason: out.reason };
      return out;
    } catch (err) {
      const reason = (err as Error).message;
      this.lastCheck = { at: Date.now(), version: null, applicable: false, reason };
      return { version: null, applicable: false, reason };
    }
  }

  /** Check, then install an applicable release; resolves when it is activated (the process then restarts). */
  apply(): Promise<OtaView> {
    if (this.busy) return Promise.resolve(this.view());
    const run = this.install().finally(() => (this.busy = null));
    this.busy = run;
    return run.then(() => this.view());
  }

  private async install(): Promise<void> {
    if (!this.root) {
      this.fail('update_failed', 'not installed in an A/B layout (ROOT/releases/<version>); set ota.install_root');
      return;
    }
    let manifest: Manifest;
    let hash: string;
    try {
      ({ manifest, hash } = await this.fetchManifest());
    } catch (err) {
      this.fail(refusalResult(err), (err as Error).message);
      return;
    }
    faultPoint('checking');
    const verdict = this.applicability(manifest, hash);
    if (!verdict.applicable) {
      this.lastCheck = { at: Date.now(), version: manifest.version, applicable: false, reason: verdict.reason };
      return;
    }
    const bundle = join(this.opts.dataDir, 'ota', `${manifest.version}.tgz`);
    mkdirSync(dirname(bundle), { recursive: true });
    this.set({
      phase: 'downloading',
      version: manifest.version,
      from: this.opts.version,
      manifest: hash,
      result: 'initial',
      reason: null,
      progress: { received: 0, total: manifest.size },
      uplinkWasOnline: this.opts.uplinkOnline() === true,
    });
    let lastReport = 0;
    let half = false;
    try {
      await download({
        url: new URL(manifest.url, this.opts.config.channel_url).toString(),
        dest: bundle,
        size: manifest.size,
        sha256: manifest.sha256,
        readTimeoutMs: this.opts.config.read_timeout_ms,
        ...(this.opts.freeBytes ? { freeBytes: this.opts.freeBytes } : {}),
        onProgress: (received, total) => {
          this.state.progress = { received, total };
          if (!half && received * 2 >= total) {
            half = true;
            faultPoint('downloading');
          }
          if (received === total || performance.now() - lastReport > 1000) {
            lastReport = performance.now();
            this.notify();
          }
        },
      });
    } catch (err) {
      const e = err as DownloadError;
      const result: OtaResult =
        e.kind === 'disk_space'
          ? 'not_enough_space'
          : e.kind === 'sha256' || e.kind === 'size'
            ? 'integrity_failure'
            : e.kind === 'http' && !e.retryable
              ? 'invalid_uri'
              : 'connection_lost';
      this.fail(result, e.message);
      return;
    }
    this.set({ phase: 'downloaded' });
    faultPoint('downloaded');
    this.set({ phase: 'staging' });
    try {
      await unpackRelease(bundle, releaseDir(this.root, manifest.version), manifest.version);
    } catch (err) {
      this.fail(err instanceof UnpackError ? 'unsupported_package' : 'update_failed', (err as Error).message);
      return;
    } finally {
      rmSync(bundle, { force: true });
    }
    faultPoint('staged');
    this.set({ phase: 'activating' });
    try {
      activate(this.root, manifest.version, this.opts.config.max_trial_starts);
    } catch (err) {
      this.fail('update_failed', `activation failed: ${(err as Error).message}`);
      return;
    }
    this.opts.log.warn({ version: manifest.version, from: this.opts.version }, 'update activated; restarting into it');
    this.publish(false);
    // Deferred like /mgmt/restart: the answer to `ctl ota apply` goes out before the stop begins.
    setTimeout(() => this.opts.requestRestart(`OTA update to ${manifest.version}`), 300);
  }

  /** After a (re)start: settle what a rollback, a trial or an interrupted install left behind. */
  private settleAfterStart(): void {
    const root = this.root;
    const marker = root ? readRollback(root) : null;
    if (root && marker && marker.version === this.opts.version && linkedVersion(root, 'current') === marker.version) {
      // Our own rollback was cut between writing the marker and swapping `current` (the trial
      // script then counted one more start of this release): finish it, and restart into the
      // previous release, which reports it. Deferred: the gateway is still starting.
      rollBack(root, marker.reason);
      this.opts.log.error({ version: marker.version, reason: marker.reason }, 'finishing an interrupted rollback');
      setTimeout(() => this.opts.requestRestart(`OTA rollback of ${marker.version}: ${marker.reason}`), 1000);
      return;
    }
    if (root && marker) {
      const rejected = this.state.manifest ? [...this.state.rejected, this.state.manifest] : this.state.rejected;
      this.set({
        phase: 'rolled_back',
        version: marker.version,
        result: 'update_failed',
        reason: `rolled back to ${marker.previous}: ${marker.reason} (after ${marker.starts} start(s))`,
        rejected: [...new Set(rejected)].slice(-20),
        progress: null,
      });
      clearRollback(root);
      this.opts.log.error(
        { version: marker.version, reason: marker.reason },
        `update to ${marker.version} was rolled back`,
      );
      this.publish(true);
      return;
    }
    const trial = root ? readTrial(root) : null;
    if (root && trial && trial.version === this.opts.version && linkedVersion(root, 'current') === this.opts.version) {
      this.set({ phase: 'trial', version: trial.version, from: trial.previous, reason: null, progress: null });
      this.startTrialWindow(root);
      return;
    }
    const p: OtaPhase = this.state.phase;
    if (root && p === 'trial' && this.state.version === this.opts.version && !trial) {
      // Cut after the commit point (the trial file removed) but before the state said so: the
      // release is committed — the trial script no longer counts it, nothing can roll it back.
      this.commit(root);
      return;
    }
    if (p === 'downloading' || p === 'downloaded' || p === 'staging' || p === 'activating' || p === 'trial') {
      // A kill before the switch: the running release is the old one, committed; say so. A partial
      // download stays on disk and resumes at the next apply.
      this.set({
        phase: 'failed',
        result: 'update_failed',
        reason: `interrupted while ${p}; the running release is ${this.opts.version}`,
      });
    }
  }

  private startTrialWindow(root: string): void {
    const started = performance.now();
    const windowMs = this.opts.config.health_window_s * 1000;
    // Committed at the end of the window if healthy (and online again, if it was before) for at
    // least the last `stable` ms of it: a release that is up but failing is not committed.
    const stable = Math.min(10_000, windowMs / 2);
    let healthySince: number | null = null;
    let uplink: boolean | null = null;
    const sample = (now: number) => {
      uplink = this.opts.uplinkOnline();
      const ok = this.opts.health().ok && (!this.state.uplinkWasOnline || uplink !== false);
      healthySince = ok ? (healthySince ?? now) : null;
    };
    sample(started);
    let ticks = 0;
    this.trialTimer = setInterval(() => {
      if (ticks++ === 0) faultPoint('trial');
      const now = performance.now();
      sample(now);
      if (now - started < windowMs) return;
      clearInterval(this.trialTimer);
      this.trialTimer = undefined;
      if (healthySince !== null && now - healthySince >= stable) {
        // The commit point: without a trial file the trial script never counts or rolls back.
        clearTrial(root);
        faultPoint('committing');
        this.commit(root);
      } else {
        const why = uplink === false && this.state.uplinkWasOnline ? 'uplink_not_reconnected' : 'health_check';
        const marker = rollBack(root, why);
        this.opts.log.error(
          { version: this.opts.version, reason: why },
          'update failed its health window; rolling back',
        );
        if (marker) this.opts.requestRestart(`OTA rollback of ${this.opts.version}: ${why}`);
      }
    }, 1000);
    this.trialTimer.unref();
  }

  private commit(root: string): void {
    this.set({ phase: 'committed', result: 'success', reason: null, progress: null });
    this.opts.log.info({ version: this.opts.version }, 'update committed after its health window');
    const prev = linkedVersion(root, 'previous');
    try {
      pruneReleases(root, [this.opts.version, ...(prev ? [prev] : [])], () => readdirSync(join(root, 'releases')));
    } catch (err) {
      this.opts.log.warn({ err }, 'cannot prune old releases');
    }
    this.publish(false);
  }

  private async fetchManifest(): Promise<{ manifest: Manifest; hash: string }> {
    const url = this.opts.config.channel_url;
    if (!url) throw new ManifestError('envelope', 'no OTA channel configured (ota.channel_url)');
    const bytes = await fetchSmall(url, MAX_ENVELOPE_BYTES, this.opts.config.read_timeout_ms);
    const manifest = verifyEnvelope(bytes, this.keys);
    return { manifest, hash: createHash('sha256').update(bytes).digest('hex') };
  }

  private applicability(m: Manifest, hash: string): CheckOutcome {
    if (this.state.rejected.includes(hash))
      return {
        version: m.version,
        applicable: false,
        reason: `${m.version} was rolled back here; waiting for a new manifest`,
      };
    // Even with allow_downgrade: unpacking it would replace the running release's own directory.
    if (m.version === this.opts.version)
      return { version: m.version, applicable: false, reason: `${m.version} is the running release` };
    try {
      checkApplicable(m, { running: this.opts.version, gatewayId: this.opts.gatewayId, target: currentTarget() });
      return { version: m.version, applicable: true, reason: null };
    } catch (err) {
      return { version: m.version, applicable: false, reason: (err as Error).message };
    }
  }

  private scheduleCheck(first = false): void {
    const base = this.opts.config.check_interval_s * 1000;
    // The first check soon after start (but not all boards of a fleet at once), then every interval ± 20 %.
    const delay = first ? 30_000 + Math.random() * 60_000 : base * (0.8 + Math.random() * 0.4);
    this.checkTimer = setTimeout(() => {
      void (async () => {
        const out = await this.check();
        if (out.applicable && this.opts.config.auto_apply) await this.apply();
        else if (out.applicable)
          this.opts.log.info({ version: out.version }, 'an update is available (ota.auto_apply is off)');
        this.scheduleCheck();
      })();
    }, delay);
    this.checkTimer.unref();
  }

  private fail(result: OtaResult, reason: string): void {
    this.set({ phase: 'failed', result, reason, progress: null });
    this.opts.log.error({ result, reason }, 'update failed; the running release is unchanged');
    this.publish(false);
  }

  private set(patch: Partial<OtaState>): void {
    this.state = { ...this.state, ...patch, updated: Date.now() };
    saveState(this.statePath, this.state);
    this.notify();
  }

  private notify(): void {
    const v = this.view();
    for (const fn of this.listeners) fn(v);
  }

  /** `gateway/ota/state`, retained locally; uplinked HIGH, a rollback CRITICAL. */
  private publish(critical: boolean): void {
    this.opts.publisher
      ?.publish({
        topic: 'gateway/ota/state',
        payload: JSON.stringify(this.view()),
        retain: true,
        priority: critical ? 'CRITICAL' : 'HIGH',
        source: 'system',
      })
      .catch((err: unknown) => this.opts.log.warn({ err }, 'cannot publish the OTA state'));
  }
}

function refusalResult(err: unknown): OtaResult {
  if (err instanceof ManifestError) return RESULT_OF_REFUSAL[err.kind] ?? 'update_failed';
  if (err instanceof DownloadError) return err.retryable ? 'connection_lost' : 'invalid_uri';
  return 'update_failed';
}
