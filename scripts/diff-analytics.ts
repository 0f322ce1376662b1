/**
 * Differential check of the rule engine and windows against another build (`--ref DIR`, e.g. the
 * commit before a performance change): random readings (numbers, nulls, strings, gaps, six
 * devices, a max_tracks limit every fifth round) through both engines with ticks, takeDirty and
 * acknowledgements at the same points, and random push/advance sequences through every window
 * kind. Every event, snapshot, counter and aggregate must be identical (JSON); exits 1 otherwise.
 * Run: npm run build && node dist/scripts/diff-analytics.js --ref DIR [rounds=30]
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value } from '@sinclair/typebox/value';
import type { AnalyticsConfig } from '../src/analytics/config.js';
import type { RuleInput } from '../src/analytics/engine.js';

const argv = process.argv.slice(2);
const refAt = argv.indexOf('--ref');
if (refAt < 0) throw new Error('usage: diff-analytics.js --ref DIR [rounds]');
const REF = resolve(argv.splice(refAt, 2)[1]!);
const rounds = Number(argv[0] ?? 30);
const here = resolve(fileURLToPath(new URL('../..', import.meta.url)));

type Engine = typeof import('../src/analytics/engine.js');
type Config = typeof import('../src/analytics/config.js');
type Window = typeof import('../src/analytics/window.js');
const load = async (root: string) => ({
  eng: (await import(join(root, 'dist/src/analytics/engine.js'))) as Engine,
  cfg: (await import(join(root, 'dist/src/analytics/config.js'))) as Config,
  win: (await import(join(root, 'dist/src/analytics/window.js'))) as Window,
});
const A = await load(REF);
const B = await load(here);

let seed = 99;
const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
const rules = [
  {
    name: 'hi',
    devices: 'd-*',
    value: 'x',
    when: { above: 60 },
    clear: { below: 55 },
    for_s: 3,
    clear_for_s: 2,
    cooldown_s: 5,
    max_per_hour: 5,
  },
  { name: 'rep', value: 'x', when: { at_least: 58 }, repeat: 3 },
  { name: 'lo', value: 'x', when: { below: 42 }, clear_after_silence_s: 4 },
  { name: 'le', devices: 'd-1', value: 'x', when: { at_most: 41 } },
  { name: 'z', value: 'x', when: { zscore_above: 2 }, warmup: 10, min_sigma: 0.5 },
  { name: 'z2', value: 'y', when: { zscore_above: 1.5 }, window: { kind: 'sliding', duration_s: 5 }, warmup: 3 },
  { name: 'rt', value: 'x', when: { rate_above: 5 }, window: { kind: 'tumbling', duration_s: 3 } },
  { name: 'rb', value: 'y', when: { rate_below: -3 }, window: { kind: 'hopping', duration_s: 4, hop_s: 2 } },
  { name: 'rc', value: 'y', when: { rate_below: -3 }, window: { kind: 'tumbling', count: 7 } },
  { name: 'eq', value: 's', when: { equals: 'bad' }, clear: { equals: 'good' } },
  { name: 'ne', value: 's', when: { not_equals: 'good' }, for_s: 2 },
  { name: 'nd', devices: 'd-2', value: 'x', when: { no_data_s: 3 } },
  { name: 'nd2', value: 'y', when: { no_data_s: 2 }, clear_for_s: 1 },
];
let mismatches = 0;
for (let round = 0; round < rounds; round++) {
  const cfgOf = (m: typeof A) =>
    Value.Default(
      m.cfg.AnalyticsConfigSchema,
      structuredClone({ rules, max_tracks: round % 5 === 4 ? 20 : 50000, max_alerts_per_device_per_hour: 30 }),
    ) as AnalyticsConfig;
  const readings: RuleInput[] = [];
  let ts = 1_700_000_000_000;
  for (let i = 0; i < 3000; i++) {
    ts += Math.floor(rnd() * (rnd() < 0.02 ? 8000 : 400));
    const values: RuleInput['values'] & Record<string, unknown> = {};
    if (rnd() < 0.8) values['x'] = rnd() < 0.1 ? null : Math.round(50 + (rnd() - 0.5) * 30);
    if (rnd() < 0.6) values['y'] = Math.round(rnd() * 20) / 2;
    if (rnd() < 0.3) values['s'] = ['good', 'bad', 'meh', 1][Math.floor(rnd() * 4)]!;
    values['zz'] = 1;
    readings.push({ deviceId: `d-${Math.floor(rnd() * 6)}`, ts, values });
  }
  const run = (m: typeof A): string => {
    const e = new m.eng.RuleEngine(cfgOf(m));
    const out: unknown[] = [];
    let clock: number | null = null;
    for (const r of readings) {
      const t: number = clock === null ? r.ts : Math.max(r.ts, clock);
      if (clock === null) {
        clock = t;
        out.push(...e.tick(t, t));
      }
      for (let n: number = clock + 1000; n <= t; n += 1000) {
        out.push(...e.tick(n, n));
        clock = n;
      }
      out.push(...e.onReading(r, t));
      if (rnd() < 0.01) out.push({ dirty: JSON.stringify(e.takeDirty(t)).length });
      if (rnd() < 0.003 && e.active().length) out.push(e.acknowledge(e.active()[0]!.id, t));
    }
    out.push({ snap: e.snapshot(clock ?? 0), counters: e.counters, active: e.active(), recent: e.recent() });
    return JSON.stringify(out);
  };
  const s0 = seed;
  const a = run(A);
  seed = s0;
  const b = run(B);
  if (a !== b) mismatches++;
  console.log(
    `engine round ${round}: ${a === b ? 'same' : 'DIFFERENT'} (${(a.match(/"raised"/g) ?? []).length} raises)`,
  );
}
const specs = [
  { kind: 'sliding', count: 5 },
  { kind: 'sliding', duration_ms: 3000 },
  { kind: 'sliding', count: 50, duration_ms: 2000 },
  { kind: 'tumbling', count: 4 },
  { kind: 'tumbling', duration_ms: 2500 },
  { kind: 'hopping', duration_ms: 3000, hop_ms: 1000 },
  { kind: 'hopping', duration_ms: 1000, hop_ms: 3000 },
] as const;
for (const spec of specs) {
  const wa = new A.win.MetricWindow(spec);
  const wb = new B.win.MetricWindow(spec);
  let t = 0;
  const oa: unknown[] = [];
  const ob: unknown[] = [];
  for (let i = 0; i < 20000; i++) {
    t += Math.floor(rnd() * (rnd() < 0.01 ? 10000 : 300)) - (rnd() < 0.05 ? 500 : 0);
    const v = Math.round(rnd() * 1000) / 10;
    if (rnd() < 0.1) {
      oa.push(wa.advance(t));
      ob.push(wb.advance(t));
    } else {
      oa.push(wa.push(t, v));
      ob.push(wb.push(t, v));
    }
    oa.push(wa.current());
    ob.push(wb.current());
    if (i % 5000 === 0) {
      oa.push(wa.snapshot());
      ob.push(wb.snapshot());
    }
  }
  const same = JSON.stringify(oa) === JSON.stringify(ob);
  if (!same) mismatches++;
  console.log(`window ${JSON.stringify(spec)}: ${same ? 'same' : 'DIFFERENT'}`);
}
console.log(JSON.stringify({ bench: 'diff-analytics', rounds, windows: specs.length, mismatches }));
process.exit(mismatches === 0 ? 0 : 1);
