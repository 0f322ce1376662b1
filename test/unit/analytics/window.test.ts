import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricWindow } from '../../../src/analytics/window.js';
import { Welford } from '../../../src/analytics/stats.js';
import { zScore } from '../../../src/analytics/conditions.js';

const close = (a: number, b: number, eps = 1e-9) =>
  assert.ok(Math.abs(a - b) <= eps * Math.max(1, Math.abs(b)), `${a} ≠ ${b}`);

/** Reference statistics by brute force. */
function reference(xs: number[]) {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  return { mean, stddev: Math.sqrt(variance), min: Math.min(...xs), max: Math.max(...xs) };
}

test('Welford add/remove matches a brute-force mean and σ over a long random stream', () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 100 - 50;
  const w = new Welford();
  const live: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const x = rnd();
    w.add(x);
    live.push(x);
    if (live.length > 50) w.remove(live.shift()!);
    if (i % 500 === 499) {
      const ref = reference(live);
      close(w.mean, ref.mean, 1e-9);
      close(Math.sqrt(w.variance()), ref.stddev, 1e-7);
    }
  }
  w.remove(0);
  for (let i = 0; i < 60; i++) w.remove(1);
  assert.equal(w.count, 0);
  assert.equal(w.variance(), 0);
});

test('sliding count window: last N samples, min/max follow evictions, rate of change per second', () => {
  const w = new MetricWindow({ kind: 'sliding', count: 3 });
  const xs = [5, 1, 9, 2, 2, 7];
  xs.forEach((x, i) => w.push(i * 1000, x));
  const a = w.current();
  assert.equal(a.count, 3);
  assert.equal(a.min, 2);
  assert.equal(a.max, 7);
  close(a.mean, 11 / 3);
  assert.equal(a.last, 7);
  close(a.ratePerS!, (7 - 2) / 2);
});

test('sliding time window: samples older than duration_ms leave, also when time passes without samples', () => {
  const w = new MetricWindow({ kind: 'sliding', duration_ms: 10_000 });
  w.push(0, 100);
  w.push(5_000, 1);
  w.push(9_000, 2);
  assert.equal(w.current().max, 100);
  w.push(12_000, 3);
  assert.equal(w.current().count, 3);
  assert.equal(w.current().max, 3);
  w.advance(30_000);
  assert.equal(w.current().count, 0);
  assert.equal(w.current().ratePerS, null);
});

test('tumbling time windows close once each, aligned, with their own aggregate', () => {
  const w = new MetricWindow({ kind: 'tumbling', duration_ms: 10_000 });
  assert.deepEqual(w.push(1_000, 1), []);
  assert.deepEqual(w.push(9_999, 3), []);
  const closed = w.push(10_000, 10);
  assert.equal(closed.length, 1);
  assert.deepEqual([closed[0]!.start, closed[0]!.end, closed[0]!.agg.count, closed[0]!.agg.mean], [0, 10_000, 2, 2]);
  const later = w.advance(25_000);
  assert.equal(later.length, 1);
  assert.equal(later[0]!.agg.count, 1);
  assert.equal(later[0]!.start, 10_000);
});

test('tumbling count windows emit every N samples', () => {
  const w = new MetricWindow({ kind: 'tumbling', count: 2 });
  assert.equal(w.push(0, 1).length, 0);
  const c = w.push(1, 3);
  assert.equal(c.length, 1);
  assert.equal(c[0]!.agg.mean, 2);
  assert.equal(w.current().count, 0);
});

test('hopping windows overlap: a sample belongs to duration/hop windows; windows are emitted in order', () => {
  const w = new MetricWindow({ kind: 'hopping', duration_ms: 10_000, hop_ms: 5_000 });
  const out = [];
  for (let t = 100; t < 30_000; t += 1_000) out.push(...w.push(t, t < 15_000 ? 1 : 2));
  out.push(...w.advance(40_000));
  const starts = out.map((c) => c.start);
  // Starts are multiples of hop_ms; the first window that holds t = 0.1 s starts at −5 s.
  assert.deepEqual(starts, [-5_000, 0, 5_000, 10_000, 15_000, 20_000, 25_000]);
  // [10 s, 20 s) holds five 1s (10.1..14.1) and five 2s (15.1..19.1).
  const mid = out.find((c) => c.start === 10_000)!;
  assert.equal(mid.agg.count, 10);
  close(mid.agg.mean, 1.5);
  assert.equal(out[0]!.agg.count, 5, '[−5 s, 5 s) holds 0.1..4.1 s');
  assert.equal(out[1]!.agg.count, 10, '[0, 10 s) holds 0.1..9.1 s');
});

test('a window refuses a shape it cannot be', () => {
  assert.throws(() => new MetricWindow({ kind: 'sliding' }), /count or duration_ms/);
  assert.throws(() => new MetricWindow({ kind: 'tumbling', count: 2, duration_ms: 5 }), /either/);
  assert.throws(() => new MetricWindow({ kind: 'hopping', duration_ms: 10, hop_ms: 0 }), /hop_ms/);
});

test('snapshot/restore keeps the samples and aggregate', () => {
  const w = new MetricWindow({ kind: 'sliding', count: 5 });
  [3, 1, 4, 1, 5, 9].forEach((x, i) => w.push(i, x));
  const copy = new MetricWindow({ kind: 'sliding', count: 5 });
  copy.restore(JSON.parse(JSON.stringify(w.snapshot())));
  assert.deepEqual(copy.current(), w.current());
});

test('z-score: null while warming up; the minimum σ guards a flat signal', () => {
  const flat = { count: 30, mean: 10, min: 10, max: 10, stddev: 0, last: 10, ratePerS: 0 };
  assert.equal(zScore(11, { ...flat, count: 5 }, { warmup: 30, minSigma: 0.5 }), null);
  assert.equal(zScore(11, flat, { warmup: 30, minSigma: 0.5 }), 2);
  assert.equal(zScore(13, { ...flat, stddev: 1 }, { warmup: 30, minSigma: 0.5 }), 3);
});

test('sliding windows over a long random stream match a brute-force recomputation (ring wrap-around and growth)', () => {
  let seed = 11;
  const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (const spec of [
    { kind: 'sliding' as const, count: 7 },
    { kind: 'sliding' as const, count: 300 },
    { kind: 'sliding' as const, duration_ms: 2_000 },
    { kind: 'sliding' as const, count: 40, duration_ms: 1_500 },
  ]) {
    const w = new MetricWindow(spec);
    const live: [number, number][] = [];
    let t = 0;
    for (let i = 0; i < 20_000; i++) {
      // Bursts (the ring grows), silences (it empties), equal times (no rate).
      t += rnd() < 0.01 ? 5_000 : Math.floor(rnd() * 20);
      const v = Math.round(rnd() * 2000) / 10 - 100;
      w.push(t, v);
      live.push([t, v]);
      if (spec.duration_ms !== undefined) while (live.length > 0 && live[0]![0] < t - spec.duration_ms) live.shift();
      if (spec.count !== undefined && live.length > spec.count) live.shift();
      if (i % 97 !== 0) continue;
      const a = w.current();
      const xs = live.map(([, x]) => x);
      const ref = reference(xs);
      assert.equal(a.count, xs.length);
      assert.equal(a.min, ref.min);
      assert.equal(a.max, ref.max);
      close(a.mean, ref.mean, 1e-9);
      close(a.stddev, ref.stddev, 1e-6);
      assert.equal(a.last, v);
      const dt = (t - live[0]![0]) / 1000;
      assert.equal(a.ratePerS, dt > 0 ? (v - live[0]![1]) / dt : null);
    }
    const copy = new MetricWindow(spec);
    copy.restore(w.snapshot());
    assert.deepEqual(copy.snapshot().samples, live);
  }
});
