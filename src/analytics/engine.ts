import { createHash } from 'node:crypto';
import type { AnalyticsConfig, ConditionSpec, RuleSpec, WindowConfigSpec } from './config.js';
import {
  compileCondition,
  globMatcher,
  scoreOf,
  type Observation,
  type Value,
  type ZScoreOptions,
} from './conditions.js';
import { emptyAggregate } from './stats.js';
import { MetricWindow, type WindowSpec, type WindowState } from './window.js';

/**
 * The rule engine: readings and clock ticks in, alert events out. Pure — no timers, no I/O, no
 * clock of its own — so live evaluation and the backtest run the same code on the same times
 * (docs/analytics.md). `now` is milliseconds on the caller's clock: the gateway's monotonic clock
 * live (DESIGN: durations never use wall time), the recorded timestamps in a backtest.
 */

export type AlertState = 'raised' | 'acknowledged' | 'cleared';
export type Severity = RuleSpec['severity'];

export interface AlertRecord {
  /** `{rule}/{deviceId}/{n}`: unique per engine state, stable across restarts (n is persisted). */
  id: string;
  rule: string;
  deviceId: string;
  /** The value name the rule watches. */
  name: string;
  severity: Severity;
  priority: RuleSpec['priority'];
  state: AlertState;
  message: string;
  /** The value that raised it (the last one seen, for silence). */
  value: Value;
  /** z-score at raise, for zscore rules. */
  score: number | null;
  /** Wall-clock ms (data only): the raising reading's ts, or the wall clock at the tick. */
  raisedTs: number;
  acknowledgedTs: number | null;
  clearedTs: number | null;
  clearedValue: Value;
  /** condition: the clear condition held; silence: clear_after_silence_s; data: a reading ended no_data. */
  clearReason: 'condition' | 'silence' | 'data' | null;
}

export interface AlertEvent {
  kind: 'raised' | 'acknowledged' | 'cleared';
  alert: AlertRecord;
}

/** What the engine needs of a reading. */
export interface RuleInput {
  deviceId: string;
  /** Wall-clock ms from the source (data only: copied into alerts). */
  ts: number;
  values: Readonly<Record<string, Value>>;
}

export interface EngineCounters {
  evaluated: number;
  raised: number;
  cleared: number;
  /** Raises held back by a flood limit (per rule and device, or per device). */
  suppressed: number;
  /** (rule, device) pairs not tracked because max_tracks was reached. */
  untracked: number;
}

/** Default window of zscore/rate rules that name none. */
export const DEFAULT_WINDOW: WindowConfigSpec = { kind: 'sliding', count: 100 };
/** Cleared alerts kept for /mgmt/alerts. */
const HISTORY = 500;
const HOUR_MS = 3_600_000;

interface CompiledRule {
  spec: RuleSpec;
  /** Hash of the spec's JSON: persisted state is restored only into the same rule. */
  key: string;
  matches: (id: string) => boolean;
  literalDevice: string | null;
  window: WindowSpec | null;
  noDataMs: number | null;
  forMs: number;
  clearForMs: number;
  silenceMs: number | null;
  cooldownMs: number;
  z: ZScoreOptions;
  when: (obs: Observation) => boolean | null;
  clear: ((obs: Observation) => boolean | null) | null;
  /** Only z-score rules report a score. */
  scored: boolean;
  /** The conditions read the window before the sample (z-score) / with it (rate): only those aggregates are computed. */
  readsBefore: boolean;
  readsAfter: boolean;
}

interface Track {
  rule: CompiledRule;
  deviceId: string;
  window: MetricWindow | null;
  /** Engine time since which the raise condition has held without a break, or null. */
  trueSince: number | null;
  trueCount: number;
  /** Since when the clear condition holds (while active), or null. */
  clearSince: number | null;
  lastSeen: number | null;
  lastValue: Value;
  lastCond: boolean | null;
  lastScore: number | null;
  cooldownUntil: number;
  /** Engine times of raises within the last hour (flood limit). */
  raises: number[];
  /** A flood-suppressed raise is counted once, until the condition breaks. */
  suppressed: boolean;
  active: AlertRecord | null;
  /** Changed since the last save (the engine's dirty list holds it). */
  dirty: boolean;
  /** Reused for every reading (no allocation per evaluation); the window's aggregates before and after it. */
  obs: Observation;
}

/** Persisted form: every engine time is relative to the snapshot's `now` (≤ 0). */
export interface EngineState {
  version: 1;
  seq: number;
  tracks: {
    key: string;
    deviceId: string;
    window: WindowState | null;
    trueSince: number | null;
    trueCount: number;
    clearSince: number | null;
    lastSeen: number | null;
    lastValue: Value;
    lastCond: boolean | null;
    /** null: no cooldown running. */
    cooldownUntil: number | null;
    raises: number[];
    suppressed: boolean;
    active: AlertRecord | null;
  }[];
  history: AlertRecord[];
}

function toWindowSpec(w: WindowConfigSpec): WindowSpec {
  const ms = (s: number | undefined) => (s === undefined ? undefined : Math.round(s * 1000));
  if (w.kind === 'hopping') return { kind: 'hopping', duration_ms: ms(w.duration_s)!, hop_ms: ms(w.hop_s)! };
  const spec: { kind: 'sliding' | 'tumbling'; count?: number; duration_ms?: number } = { kind: w.kind };
  if (w.count !== undefined) spec.count = w.count;
  if (w.duration_s !== undefined) spec.duration_ms = ms(w.duration_s);
  return spec;
}

const isZ = (c: ConditionSpec | undefined) => c !== undefined && 'zscore_above' in c;
const isRate = (c: ConditionSpec | undefined) => c !== undefined && ('rate_above' in c || 'rate_below' in c);
const needsWindow = (c: ConditionSpec | undefined) =>
  c !== undefined && ('zscore_above' in c || 'rate_above' in c || 'rate_below' in c);

/** Checks rules the schema cannot (unique names, windows that can be built); throws RangeError naming the rule. */
export function compileRules(config: AnalyticsConfig): CompiledRule[] {
  const names = new Set<string>();
  return config.rules.map((spec, i) => {
    if (names.has(spec.name)) throw new RangeError(`analytics.rules[${i}]: rule name "${spec.name}" is used twice`);
    names.add(spec.name);
    if (spec.clear && 'no_data_s' in spec.clear)
      throw new RangeError(
        `analytics.rules[${i}] (${spec.name}): clear cannot be no_data_s; use clear_after_silence_s`,
      );
    let window: WindowSpec | null = null;
    if (spec.window || needsWindow(spec.when) || needsWindow(spec.clear)) {
      window = toWindowSpec(spec.window ?? DEFAULT_WINDOW);
      try {
        new MetricWindow(window);
      } catch (err) {
        throw new RangeError(`analytics.rules[${i}] (${spec.name}): window: ${(err as Error).message}`);
      }
    }
    return {
      spec,
      key: createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16),
      matches: globMatcher(spec.devices),
      literalDevice: /[*?]/.test(spec.devices) ? null : spec.devices,
      window,
      noDataMs: 'no_data_s' in spec.when ? spec.when.no_data_s * 1000 : null,
      forMs: spec.for_s * 1000,
      clearForMs: spec.clear_for_s * 1000,
      silenceMs: spec.clear_after_silence_s === undefined ? null : spec.clear_after_silence_s * 1000,
      cooldownMs: spec.cooldown_s * 1000,
      z: { warmup: spec.warmup, minSigma: spec.min_sigma },
      when: compileCondition(spec.when, { warmup: spec.warmup, minSigma: spec.min_sigma }),
      clear: spec.clear ? compileCondition(spec.clear, { warmup: spec.warmup, minSigma: spec.min_sigma }) : null,
      scored: 'zscore_above' in spec.when,
      readsBefore: isZ(spec.when) || isZ(spec.clear),
      readsAfter: isRate(spec.when) || isRate(spec.clear),
    };
  });
}

export class RuleEngine {
  private readonly rules: CompiledRule[];
  /** By value name, the rules that watch it (a reading touches only those). */
  private readonly byName = new Map<string, CompiledRule[]>();
  private readonly tracks = new Set<Track>();
  private readonly byDevice = new Map<string, Map<CompiledRule, Track>>();
  /** Per device, engine times of raises in the last hour across rules. */
  private readonly deviceRaises = new Map<string, number[]>();
  private readonly history: AlertRecord[] = [];
  /**
   * Per device, per watched value name, the tracks a reading of that value updates, in rule order:
   * one lookup per value instead of one per rule; names no rule watches are never stored here.
   */
  private readonly watched = new Map<string, Map<string, Track[]>>();
  /** Tracks changed since they were last saved (what the state store must write); `Track.dirty` says who is in. */
  private dirty: Track[] = [];
  private dirtyN = 0;
  private seq = 0;
  readonly counters: EngineCounters = { evaluated: 0, raised: 0, cleared: 0, suppressed: 0, untracked: 0 };

  constructor(private readonly config: AnalyticsConfig) {
    this.rules = compileRules(config);
    for (const r of this.rules) {
      const list = this.byName.get(r.spec.value) ?? [];
      list.push(r);
      this.byName.set(r.spec.value, list);
    }
  }

  /**
   * Evaluates every rule that watches a value of this reading; appends the events it caused to
   * `events` (a batch shares one list) and returns it.
   */
  onReading(reading: RuleInput, now: number, events: AlertEvent[] = []): AlertEvent[] {
    const { deviceId, values } = reading;
    let names: Map<string, Track[]> | undefined;
    for (const name in values) {
      const rules = this.byName.get(name);
      if (rules === undefined) continue;
      names ??= this.watched.get(deviceId);
      let tracks = names?.get(name);
      if (tracks === undefined) tracks = this.tracksFor(rules, name, deviceId, now);
      const value = values[name]!;
      this.counters.evaluated += tracks.length;
      for (let i = 0; i < tracks.length; i++) this.observe(tracks[i]!, value, now, reading.ts, events);
    }
    return events;
  }

  /**
   * The tracks of `rules` for this device, made on first sight (the glob runs once per device and
   * rule). Cached unless max_tracks left one out: then the next reading tries again and counts it
   * (untracked), as it always did.
   */
  private tracksFor(rules: readonly CompiledRule[], name: string, deviceId: string, now: number): Track[] {
    const known = this.byDevice.get(deviceId);
    const out: Track[] = [];
    let complete = true;
    for (const rule of rules) {
      const track = known?.get(rule) ?? (rule.matches(deviceId) ? this.track(rule, deviceId, now) : undefined);
      if (track) out.push(track);
      else if (rule.matches(deviceId)) complete = false;
    }
    if (complete) {
      let names = this.watched.get(deviceId);
      if (!names) this.watched.set(deviceId, (names = new Map()));
      names.set(name, out);
    }
    return out;
  }

  /** Time-driven evaluation: durations that elapsed without a reading, silence, no_data. */
  tick(now: number, wallNow: number): AlertEvent[] {
    const events: AlertEvent[] = [];
    // A rule naming one device watches it from the first tick, so "no data since start" raises.
    for (const rule of this.rules)
      if (rule.literalDevice !== null && rule.noDataMs !== null) this.track(rule, rule.literalDevice, now);
    for (const t of this.tracks) {
      const { rule } = t;
      if (t.window) t.window.advanceTo(now);
      if (!t.active) {
        if (rule.noDataMs !== null && t.lastSeen !== null && now - t.lastSeen >= rule.noDataMs) {
          if (t.trueSince === null) this.markDirty(t);
          t.trueSince ??= t.lastSeen + rule.noDataMs;
          t.lastCond = true;
          t.trueCount = Math.max(t.trueCount, rule.spec.repeat);
        }
        if (t.lastCond === true && t.trueSince !== null) this.maybeRaise(t, now, wallNow, events);
      } else {
        if (rule.silenceMs !== null && t.lastSeen !== null && now - t.lastSeen >= rule.silenceMs) {
          this.clear(t, now, wallNow, 'silence', events);
          continue;
        }
        if (t.clearSince !== null && now - t.clearSince >= rule.clearForMs)
          this.clear(t, now, wallNow, 'condition', events);
      }
    }
    return events;
  }

  /** Operator acknowledgement: raised → acknowledged. Undefined when no such open alert. */
  acknowledge(id: string, wallNow: number): AlertEvent | undefined {
    for (const t of this.tracks) {
      if (t.active?.id === id && t.active.state === 'raised') {
        t.active.state = 'acknowledged';
        t.active.acknowledgedTs = wallNow;
        this.markDirty(t);
        return { kind: 'acknowledged', alert: { ...t.active } };
      }
    }
    return undefined;
  }

  /** Open alerts (raised or acknowledged). */
  active(): AlertRecord[] {
    const out: AlertRecord[] = [];
    for (const t of this.tracks) if (t.active) out.push({ ...t.active });
    return out;
  }

  /** Recently cleared alerts, newest last (bounded). */
  recent(): AlertRecord[] {
    return this.history.map((a) => ({ ...a }));
  }

  /** Keys of the current rules (persisted rows of other keys are stale). */
  ruleKeys(): string[] {
    return this.rules.map((r) => r.key);
  }

  get trackCount(): number {
    return this.tracks.size;
  }

  snapshot(now: number): EngineState {
    return this.stateOf(this.tracks, now);
  }

  /** Like snapshot, with only the tracks changed since they were last taken (the store writes these). */
  takeDirty(now: number): EngineState {
    const list = this.dirty;
    this.dirty = [];
    const taken: Track[] = [];
    // A track taken by takeTracks and changed again sits in the list twice: its flag admits it once.
    for (const t of list) if (this.clean(t)) taken.push(t);
    return this.stateOf(taken, now);
  }

  /**
   * Like takeDirty, for the tracks of (rule, device) pairs named by these alerts only: an alert
   * transition is saved at once, without writing every other changed track (those wait for the
   * next takeDirty).
   */
  takeTracksOf(alerts: readonly AlertRecord[], now: number): EngineState {
    const byRule = new Map(this.rules.map((r) => [r.spec.name, r]));
    const taken: Track[] = [];
    for (const a of alerts) {
      const rule = byRule.get(a.rule);
      const t = rule && this.byDevice.get(a.deviceId)?.get(rule);
      if (t && this.clean(t)) taken.push(t);
    }
    return this.stateOf(taken, now);
  }

  /** The tracks of a state that could not be written are changed-and-unsaved again. */
  markUnsaved(state: EngineState): void {
    const byKey = new Map(this.rules.map((r) => [r.key, r]));
    for (const s of state.tracks) {
      const rule = byKey.get(s.key);
      const t = rule && this.byDevice.get(s.deviceId)?.get(rule);
      if (t) this.markDirty(t);
    }
  }

  get dirtyCount(): number {
    return this.dirtyN;
  }

  private markDirty(t: Track): void {
    if (t.dirty) return;
    t.dirty = true;
    this.dirtyN++;
    this.dirty.push(t);
  }

  /** Clears the flag; true when it was set. */
  private clean(t: Track): boolean {
    if (!t.dirty) return false;
    t.dirty = false;
    this.dirtyN--;
    return true;
  }

  private stateOf(tracks: Iterable<Track>, now: number): EngineState {
    const rel = (t: number | null) => (t === null ? null : t - now);
    return {
      version: 1,
      seq: this.seq,
      tracks: [...tracks].map((t) => {
        const w = t.window?.snapshot() ?? null;
        return {
          key: t.rule.key,
          deviceId: t.deviceId,
          window: w && {
            samples: w.samples.map(([ts, v]) => [ts - now, v] as [number, number]),
            openStart: rel(w.openStart),
          },
          trueSince: rel(t.trueSince),
          trueCount: t.trueCount,
          clearSince: rel(t.clearSince),
          lastSeen: rel(t.lastSeen),
          lastValue: t.lastValue,
          lastCond: t.lastCond,
          cooldownUntil: Number.isFinite(t.cooldownUntil) ? t.cooldownUntil - now : null,
          raises: t.raises.map((r) => r - now),
          suppressed: t.suppressed,
          active: t.active && { ...t.active },
        };
      }),
      history: this.recent(),
    };
  }

  /**
   * Restores a snapshot taken at another time: durations resume where they stopped (the time the
   * gateway was down is not counted — a board without a battery-backed clock cannot know it).
   * Tracks of rules that changed or went away are dropped; their open alerts are dropped too.
   */
  restore(state: EngineState, now: number): void {
    if (state.version !== 1) return;
    const byKey = new Map(this.rules.map((r) => [r.key, r]));
    const abs = (t: number | null) => (t === null ? null : t + now);
    this.seq = Math.max(this.seq, state.seq);
    for (const s of state.tracks) {
      const rule = byKey.get(s.key);
      if (!rule) continue;
      const t = this.track(rule, s.deviceId, now);
      if (!t) continue;
      if (t.window && s.window)
        t.window.restore({
          samples: s.window.samples.map(([ts, v]) => [ts + now, v] as [number, number]),
          openStart: abs(s.window.openStart),
        });
      t.trueSince = abs(s.trueSince);
      t.trueCount = s.trueCount;
      t.clearSince = abs(s.clearSince);
      t.lastSeen = abs(s.lastSeen);
      t.lastValue = s.lastValue;
      t.lastCond = s.lastCond;
      t.cooldownUntil = s.cooldownUntil === null ? -Infinity : s.cooldownUntil + now;
      t.raises = s.raises.map((r) => r + now);
      t.suppressed = s.suppressed;
      t.active = s.active && { ...s.active };
    }
    // Everything restored is written again at the next save, against this run's clock.
    for (const t of this.tracks) this.markDirty(t);
    this.watched.clear();
    this.history.push(...state.history.slice(-HISTORY));
  }

  private track(rule: CompiledRule, deviceId: string, now: number): Track | undefined {
    // Per device, then per rule: no key string is built on the hot path.
    let perDevice = this.byDevice.get(deviceId);
    let t = perDevice?.get(rule);
    if (t) return t;
    if (this.tracks.size >= this.config.max_tracks) {
      this.counters.untracked++;
      return undefined;
    }
    const window = rule.window ? new MetricWindow(rule.window) : null;
    t = {
      rule,
      deviceId,
      window,
      trueSince: null,
      trueCount: 0,
      clearSince: null,
      // A rule for one named device counts silence from when it started watching.
      lastSeen: rule.literalDevice !== null ? now : null,
      lastValue: null,
      lastCond: null,
      lastScore: null,
      cooldownUntil: -Infinity,
      raises: [],
      suppressed: false,
      active: null,
      dirty: false,
      obs: {
        value: null,
        before: window ? emptyAggregate() : undefined,
        after: window ? emptyAggregate() : undefined,
      },
    };
    this.tracks.add(t);
    if (!perDevice) this.byDevice.set(deviceId, (perDevice = new Map()));
    perDevice.set(rule, t);
    this.markDirty(t);
    return t;
  }

  private observe(t: Track, value: Value, now: number, wallTs: number, events: AlertEvent[]): void {
    const { rule, obs } = t;
    obs.value = value;
    if (t.window) {
      t.window.advanceTo(now);
      if (rule.readsBefore) t.window.currentInto(obs.before!);
      if (typeof value === 'number' && Number.isFinite(value)) t.window.add(now, value);
      if (rule.readsAfter) t.window.currentInto(obs.after!);
    }
    const cond = rule.when(obs);
    this.markDirty(t);
    t.lastSeen = now;
    t.lastValue = value;
    t.lastScore = rule.scored ? scoreOf(rule.spec.when, obs, rule.z) : null;
    if (!t.active) {
      // null (not applicable: warming up, a string for a comparison) neither advances nor breaks it.
      if (cond === true) {
        t.trueSince ??= now;
        t.trueCount++;
        t.lastCond = true;
        this.maybeRaise(t, now, wallTs, events);
      } else if (cond === false) {
        t.trueSince = null;
        t.trueCount = 0;
        t.lastCond = false;
        t.suppressed = false;
      }
      return;
    }
    // Active: the explicit clear condition (hysteresis), or the raise condition no longer holding.
    const clears = rule.clear ? rule.clear(obs) : cond === null ? null : !cond;
    if (clears === true) {
      t.clearSince ??= now;
      if (now - t.clearSince >= rule.clearForMs)
        this.clear(t, now, wallTs, rule.noDataMs !== null ? 'data' : 'condition', events);
    } else if (clears === false) {
      t.clearSince = null;
    }
  }

  private maybeRaise(t: Track, now: number, wallTs: number, events: AlertEvent[]): void {
    const { rule } = t;
    if (t.trueSince === null || now - t.trueSince < rule.forMs || t.trueCount < rule.spec.repeat) return;
    if (now < t.cooldownUntil || t.suppressed) return;
    const hourAgo = now - HOUR_MS;
    t.raises = t.raises.filter((x) => x > hourAgo);
    const dev = (this.deviceRaises.get(t.deviceId) ?? []).filter((x) => x > hourAgo);
    if (t.raises.length >= rule.spec.max_per_hour || dev.length >= this.config.max_alerts_per_device_per_hour) {
      t.suppressed = true;
      this.counters.suppressed++;
      this.deviceRaises.set(t.deviceId, dev);
      return;
    }
    t.raises.push(now);
    dev.push(now);
    this.deviceRaises.set(t.deviceId, dev);
    this.seq++;
    const spec = rule.spec;
    const alert: AlertRecord = {
      id: `${spec.name}/${t.deviceId}/${this.seq}`,
      rule: spec.name,
      deviceId: t.deviceId,
      name: spec.value,
      severity: spec.severity,
      priority: spec.priority,
      state: 'raised',
      message: message(spec, t.deviceId, t.lastValue),
      value: t.lastValue,
      score: t.lastScore,
      raisedTs: wallTs,
      acknowledgedTs: null,
      clearedTs: null,
      clearedValue: null,
      clearReason: null,
    };
    t.active = alert;
    t.clearSince = null;
    this.markDirty(t);
    this.counters.raised++;
    events.push({ kind: 'raised', alert: { ...alert } });
  }

  private clear(t: Track, now: number, wallTs: number, reason: AlertRecord['clearReason'], events: AlertEvent[]): void {
    const alert = t.active!;
    alert.state = 'cleared';
    alert.clearedTs = wallTs;
    alert.clearedValue = t.lastValue;
    alert.clearReason = reason;
    t.active = null;
    t.trueSince = null;
    t.trueCount = 0;
    t.clearSince = null;
    t.lastCond = null;
    t.suppressed = false;
    t.cooldownUntil = now + t.rule.cooldownMs;
    this.markDirty(t);
    this.counters.cleared++;
    this.history.push({ ...alert });
    if (this.history.length > HISTORY) this.history.splice(0, this.history.length - HISTORY);
    events.push({ kind: 'cleared', alert: { ...alert } });
  }
}

function message(spec: RuleSpec, deviceId: string, value: Value): string {
  const tpl = spec.message ?? `${spec.name}: {device} ${spec.value} = {value}`;
  return tpl.replaceAll('{device}', deviceId).replaceAll('{value}', String(value)).replaceAll('{rule}', spec.name);
}
