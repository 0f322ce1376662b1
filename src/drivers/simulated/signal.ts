import type { Quality, ReadingValue } from '../../pipeline/reading.js';
import type { SignalConfig } from './config.js';

/** mulberry32: small, fast, seedable PRNG so demos and tests can be repeated. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Box–Muller standard normal from a uniform source. */
function gauss(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

export interface SimSample {
  values: Record<string, ReadingValue>;
  quality: Quality;
  spikes: number;
}

/** One sample of every signal at time `tSec`: sine + noise, occasional spikes, or a dropout. Pure given `rand`. */
export function sampleSignals(
  signals: readonly SignalConfig[],
  tSec: number,
  dropoutProbability: number,
  rand: () => number,
): SimSample {
  const values: Record<string, ReadingValue> = {};
  if (rand() < dropoutProbability) {
    for (const s of signals) values[s.name] = null;
    return { values, quality: 'bad', spikes: 0 };
  }
  let spikes = 0;
  for (const s of signals) {
    let v = s.base + s.amplitude * Math.sin((2 * Math.PI * tSec) / s.period_s) + s.noise * gauss(rand);
    if (rand() < s.spike_probability) {
      v += (rand() < 0.5 ? -1 : 1) * s.spike_magnitude;
      spikes++;
    }
    values[s.name] = Math.round(v * 1000) / 1000;
  }
  return { values, quality: 'good', spikes };
}
