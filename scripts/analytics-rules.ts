// Shared by bench-uplink (analytics mode) and bench-analytics-rules: the same ten rules end to end and engine alone.
/** Ten rules on the benchmark's `seq` (threshold with duration and hysteresis, z-score, rate, equality, no data). */
export const ANALYTICS_RULES = [
  '{ name: hi-1, value: seq, when: { above: 1e12 }, clear: { below: 1e11 }, for_s: 30 }',
  '{ name: hi-2, value: seq, when: { at_least: 2e12 }, for_s: 5, clear_for_s: 10 }',
  '{ name: lo-1, value: seq, when: { below: -1 }, repeat: 3 }',
  '{ name: lo-2, value: seq, when: { at_most: -5 }, cooldown_s: 60 }',
  '{ name: z-1, value: seq, when: { zscore_above: 4 }, warmup: 30 }',
  '{ name: z-2, value: seq, when: { zscore_above: 6 }, window: { kind: sliding, duration_s: 5 } }',
  '{ name: rate-1, value: seq, when: { rate_above: 1e9 }, window: { kind: sliding, count: 20 } }',
  '{ name: eq-1, value: seq, when: { equals: -42 } }',
  '{ name: ne-1, value: seq, when: { not_equals: -1 }, for_s: 1e6 }',
  '{ name: quiet, value: seq, when: { no_data_s: 600 } }',
];
