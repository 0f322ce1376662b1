import type { Aggregate } from './stats.js';
import type { ConditionSpec } from './config.js';
import type { ReadingValue } from '../pipeline/reading.js';

/** A value as readings carry it (the one Reading type, src/pipeline/reading.ts). */
export type Value = ReadingValue;

/** What a condition sees: the new value and the window's aggregate before it was added. */
export interface Observation {
  value: Value;
  /** The rule's window before this sample (z-score compares a sample with its history). */
  before: Aggregate | undefined;
  /** The rule's window including this sample (rate of change). */
  after: Aggregate | undefined;
}

export interface ZScoreOptions {
  warmup: number;
  minSigma: number;
}

/**
 * Rolling z-score |x − mean| / max(σ, minSigma) against the window's history, or null while
 * the window holds fewer than `warmup` samples (a score from three samples means nothing).
 */
export function zScore(x: number, history: Aggregate, opts: ZScoreOptions): number | null {
  if (history.count < Math.max(1, opts.warmup)) return null;
  return Math.abs(x - history.mean) / Math.max(history.stddev, opts.minSigma);
}

/**
 * Evaluates a condition on one observation: true, false, or null when it does not apply (a
 * non-numeric value for a comparison, a z-score still warming up, no rate yet). `no_data_s` is
 * decided by time alone (see RuleEngine.tick); a reading makes it false.
 */
export function evaluate(cond: ConditionSpec, obs: Observation, z: ZScoreOptions): boolean | null {
  const v = obs.value;
  const num = typeof v === 'number' && Number.isFinite(v) ? v : null;
  if ('above' in cond) return num === null ? null : num > cond.above;
  if ('at_least' in cond) return num === null ? null : num >= cond.at_least;
  if ('below' in cond) return num === null ? null : num < cond.below;
  if ('at_most' in cond) return num === null ? null : num <= cond.at_most;
  if ('equals' in cond) return v === null ? null : v === cond.equals;
  if ('not_equals' in cond) return v === null ? null : v !== cond.not_equals;
  if ('zscore_above' in cond) {
    if (num === null || !obs.before) return null;
    const score = zScore(num, obs.before, z);
    return score === null ? null : score > cond.zscore_above;
  }
  if ('rate_above' in cond) return obs.after?.ratePerS == null ? null : obs.after.ratePerS > cond.rate_above;
  if ('rate_below' in cond) return obs.after?.ratePerS == null ? null : obs.after.ratePerS < cond.rate_below;
  return false; // no_data_s: a reading arrived, so there is data.
}

/**
 * The condition compiled once per rule: the same answers as `evaluate`, without re-reading the
 * condition's shape on every reading (the hot path runs it rules × readings times).
 */
export function compileCondition(cond: ConditionSpec, z: ZScoreOptions): (obs: Observation) => boolean | null {
  const num = (v: Value) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  if ('above' in cond) {
    const n = cond.above;
    return (o) => {
      const x = num(o.value);
      return x === null ? null : x > n;
    };
  }
  if ('below' in cond) {
    const n = cond.below;
    return (o) => {
      const x = num(o.value);
      return x === null ? null : x < n;
    };
  }
  if ('at_least' in cond) {
    const n = cond.at_least;
    return (o) => {
      const x = num(o.value);
      return x === null ? null : x >= n;
    };
  }
  if ('at_most' in cond) {
    const n = cond.at_most;
    return (o) => {
      const x = num(o.value);
      return x === null ? null : x <= n;
    };
  }
  if ('equals' in cond) {
    const x = cond.equals;
    return (o) => (o.value === null ? null : o.value === x);
  }
  if ('not_equals' in cond) {
    const x = cond.not_equals;
    return (o) => (o.value === null ? null : o.value !== x);
  }
  if ('zscore_above' in cond) {
    const limit = cond.zscore_above;
    return (o) => {
      const x = num(o.value);
      if (x === null || !o.before) return null;
      const score = zScore(x, o.before, z);
      return score === null ? null : score > limit;
    };
  }
  if ('rate_above' in cond) {
    const r = cond.rate_above;
    return (o) => {
      const rate = o.after?.ratePerS;
      return rate == null ? null : rate > r;
    };
  }
  if ('rate_below' in cond) {
    const r = cond.rate_below;
    return (o) => {
      const rate = o.after?.ratePerS;
      return rate == null ? null : rate < r;
    };
  }
  return (o) => evaluate(cond, o, z); // no_data_s: a reading means data (false)
}

/** The z-score of the observation when the condition is a z-score (reported in the alert). */
export function scoreOf(cond: ConditionSpec, obs: Observation, z: ZScoreOptions): number | null {
  if (!('zscore_above' in cond) || typeof obs.value !== 'number' || !obs.before) return null;
  return zScore(obs.value, obs.before, z);
}

/** Device-id glob: `*` any run of characters, `?` one; everything else literal. */
export function globMatcher(glob: string): (id: string) => boolean {
  if (glob === '*') return () => true;
  if (!/[*?]/.test(glob)) return (id) => id === glob;
  const re = new RegExp(
    '^' +
      glob
        .split('')
        .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('') +
      '$',
  );
  return (id) => re.test(id);
}
