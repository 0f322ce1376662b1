import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import { AnalyticsConfigSchema, type AnalyticsConfig } from '../../../src/analytics/config.js';
import { compileRules, RuleEngine, type AlertEvent } from '../../../src/analytics/engine.js';

/** A validated config with the schema's defaults, as the loader builds it. */
function config(rules: unknown[], extra: Record<string, unknown> = {}): AnalyticsConfig {
  const raw = Value.Default(AnalyticsConfigSchema, structuredClone({ rules, ...extra }));
  const errors = [...Value.Errors(AnalyticsConfigSchema, raw)];
  assert.deepEqual(
    errors.map((e) => `${e.path}: ${e.message}`),
    [],
  );
  return raw as AnalyticsConfig;
}

const S = 1000;
/** Feeds (time s, value) pairs of one device and value name; returns "kind@t" per event. */
function run(engine: RuleEngine, seq: [number, number | string | null][], device = 'boiler', name = 'temp'): string[] {
  const out: string[] = [];
  for (const [t, v] of seq)
    for (const e of engine.onReading({ deviceId: device, ts: 1_700_000_000_000 + t * S, values: { [name]: v } }, t * S))
      out.push(`${e.kind}@${t}`);
  return out;
}
const kinds = (es: AlertEvent[]) => es.map((e) => e.kind);

test('duration on raise: "temp > 80 for 30 s" raises only once it held 30 s; a dip restarts the count', () => {
  const e = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 }, for_s: 30 }]));
  assert.deepEqual(
    run(e, [
      [0, 85],
      [10, 86],
      [20, 79],
      [30, 85],
      [50, 85],
      [59, 85],
      [60, 85],
    ]),
    ['raised@60'],
  );
  const a = e.active()[0]!;
  assert.equal(a.rule, 'hot');
  assert.equal(a.value, 85);
  assert.equal(a.raisedTs, 1_700_000_060_000);
  assert.equal(a.priority, 'CRITICAL');
});

test('the duration also elapses on a clock tick with no new reading', () => {
  const e = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 }, for_s: 30 }]));
  run(e, [[0, 85]]);
  assert.deepEqual(kinds(e.tick(29 * S, 0)), []);
  assert.deepEqual(kinds(e.tick(30 * S, 0)), ['raised']);
});

test('hysteresis: a value dancing on the threshold raises once; it clears after 60 s below 75', () => {
  const e = new RuleEngine(
    config([{ name: 'hot', value: 'temp', when: { above: 80 }, clear: { below: 75 }, clear_for_s: 60 }]),
  );
  const seq: [number, number][] = [];
  for (let i = 0; i < 20; i++) seq.push([i * 5, i % 2 ? 81 : 79]);
  seq.push([100, 74], [130, 74.5], [150, 76], [160, 70], [219, 70], [220, 70]);
  assert.deepEqual(run(e, seq), ['raised@5', 'cleared@220']);
});

test('repeat-N: three consecutive readings above; a break resets the count', () => {
  const e = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 }, repeat: 3 }]));
  assert.deepEqual(
    run(e, [
      [0, 81],
      [1, 82],
      [2, 70],
      [3, 81],
      [4, 81],
      [5, 81],
    ]),
    ['raised@5'],
  );
});

test('cooldown: after a clear the rule waits cooldown_s before it raises again', () => {
  const e = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 }, cooldown_s: 60 }]));
  assert.deepEqual(
    run(e, [
      [0, 90],
      [10, 70],
      [20, 90],
      [60, 90],
      [70, 90],
    ]),
    ['raised@0', 'cleared@10', 'raised@70'],
  );
});

test('z-score: no score during warm-up, min σ guards a flat signal, an outlier raises', () => {
  const e = new RuleEngine(
    config([
      {
        name: 'spike',
        value: 'temp',
        when: { zscore_above: 4 },
        window: { kind: 'sliding', count: 50 },
        warmup: 20,
        min_sigma: 0.5,
      },
    ]),
  );
  const seq: [number, number][] = [];
  // Warm-up: 19 flat samples, then an outlier that must not raise (window still warming up).
  for (let i = 0; i < 19; i++) seq.push([i, 20]);
  seq.push([19, 100]);
  assert.deepEqual(run(e, seq), []);
  // A flat history (σ 0 → min σ 0.5): 20 + 2.5 is z = 5 > 4 ... after enough flat samples.
  const e2 = new RuleEngine(
    config([{ name: 'spike', value: 'temp', when: { zscore_above: 4 }, warmup: 20, min_sigma: 0.5 }]),
  );
  const flat: [number, number][] = [];
  for (let i = 0; i < 25; i++) flat.push([i, 20]);
  assert.deepEqual(run(e2, flat), []);
  assert.deepEqual(run(e2, [[25, 21.9]]), [], 'z = 3.8 does not raise');
  assert.deepEqual(run(e2, [[26, 22.6]]), ['raised@26']);
  assert.ok(e2.active()[0]!.score! > 4);
});

test('rate of change over the window', () => {
  const e = new RuleEngine(
    config([{ name: 'climb', value: 'temp', when: { rate_above: 1 }, window: { kind: 'sliding', duration_s: 10 } }]),
  );
  assert.deepEqual(
    run(e, [
      [0, 20],
      [5, 24],
      [10, 32], // (32 − 20) / 10 s = 1.2 per s
      [20, 31], // window [10 s, 20 s]: −0.1 per s
      [25, 31],
    ]),
    ['raised@10', 'cleared@20'],
  );
});

test('no data for T: a named device that never reports raises from the first tick; data clears it', () => {
  const e = new RuleEngine(config([{ name: 'silent', devices: 'pump-1', value: 'flow', when: { no_data_s: 300 } }]));
  assert.deepEqual(kinds(e.tick(0, 0)), []);
  assert.deepEqual(kinds(e.tick(299 * S, 0)), []);
  const raised = e.tick(300 * S, 42);
  assert.deepEqual(kinds(raised), ['raised']);
  assert.equal(raised[0]!.alert.raisedTs, 42);
  assert.deepEqual(run(e, [[400, 1.5]], 'pump-1', 'flow'), ['cleared@400']);
  assert.equal(e.recent()[0]!.clearReason, 'data');
  // Silence again: raises again after another 300 s.
  assert.deepEqual(kinds(e.tick(699 * S, 0)), []);
  assert.deepEqual(kinds(e.tick(700 * S, 0)), ['raised']);
});

test('no data on a glob watches devices once they reported', () => {
  const e = new RuleEngine(config([{ name: 'silent', devices: 'pump-*', value: 'flow', when: { no_data_s: 60 } }]));
  assert.deepEqual(kinds(e.tick(120 * S, 0)), [], 'nothing seen yet, nothing to miss');
  run(e, [[130, 1]], 'pump-7', 'flow');
  assert.deepEqual(kinds(e.tick(190 * S, 0)), ['raised']);
  assert.equal(e.active()[0]!.deviceId, 'pump-7');
});

test('an active alert clears after silence (clear_after_silence_s)', () => {
  const e = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 }, clear_after_silence_s: 120 }]));
  run(e, [[0, 90]]);
  assert.deepEqual(kinds(e.tick(119 * S, 0)), []);
  assert.deepEqual(kinds(e.tick(120 * S, 0)), ['cleared']);
  assert.equal(e.recent()[0]!.clearReason, 'silence');
});

test('string equality: status == "fault" raises, anything else clears; numbers do not match strings', () => {
  const e = new RuleEngine(config([{ name: 'fault', value: 'status', when: { equals: 'fault' } }]));
  assert.deepEqual(
    run(
      e,
      [
        [0, 'ok'],
        [1, 'fault'],
        [2, 'fault'],
        [3, 0],
        [4, null],
        [5, 'ok'],
      ],
      'press',
      'status',
    ),
    ['raised@1', 'cleared@3'],
  );
});

test('flood limits: max_per_hour per rule and device, and per device across rules; suppressions counted once', () => {
  const e = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 }, max_per_hour: 2 }]));
  const seq: [number, number][] = [];
  for (let i = 0; i < 10; i++) seq.push([i * 10, 90], [i * 10 + 5, 70]);
  assert.deepEqual(run(e, seq), ['raised@0', 'cleared@5', 'raised@10', 'cleared@15']);
  assert.equal(e.counters.suppressed, 8);
  // After an hour the budget is back.
  assert.deepEqual(run(e, [[3700, 90]]), ['raised@3700']);

  const e2 = new RuleEngine(
    config(
      [
        { name: 'a', value: 'x', when: { above: 1 } },
        { name: 'b', value: 'x', when: { above: 2 } },
      ],
      { max_alerts_per_device_per_hour: 1 },
    ),
  );
  assert.deepEqual(run(e2, [[0, 5]], 'd', 'x'), ['raised@0']);
  assert.equal(e2.counters.suppressed, 1);
});

test('lifecycle: raised → acknowledged → cleared; one alert per (rule, device); ids are unique', () => {
  const e = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 } }]));
  run(e, [[0, 90]], 'a');
  run(e, [[0, 95]], 'b');
  run(e, [[1, 99]], 'a');
  const open = e.active();
  assert.equal(open.length, 2);
  assert.notEqual(open[0]!.id, open[1]!.id);
  const ack = e.acknowledge(open[0]!.id, 1234)!;
  assert.equal(ack.kind, 'acknowledged');
  assert.equal(ack.alert.acknowledgedTs, 1234);
  assert.equal(e.acknowledge(open[0]!.id, 1), undefined, 'acknowledging twice does nothing');
  assert.equal(e.acknowledge('nope', 1), undefined);
  assert.deepEqual(run(e, [[2, 70]], 'a'), ['cleared@2']);
  assert.equal(e.recent()[0]!.state, 'cleared');
  assert.equal(e.recent()[0]!.acknowledgedTs, 1234);
});

test('state survives a restart: a duration resumes where it stopped, open alerts and ids carry over', () => {
  const cfg = config([
    { name: 'hot', value: 'temp', when: { above: 80 }, for_s: 600 },
    { name: 'open', value: 'temp', when: { above: 50 } },
  ]);
  const before = new RuleEngine(cfg);
  run(before, [
    [0, 90],
    [400, 90],
  ]);
  const state = JSON.parse(JSON.stringify(before.snapshot(400 * S)));
  // Power cut; the monotonic clock starts again near zero.
  const after = new RuleEngine(cfg);
  after.restore(state, 5 * S);
  assert.equal(after.active().length, 1, 'the open alert is restored');
  assert.deepEqual(kinds(after.tick(204 * S, 0)), [], '599 s of the 600 s held');
  const raised = after.tick(205 * S, 0);
  assert.deepEqual(kinds(raised), ['raised']);
  assert.equal(raised[0]!.alert.id, 'hot/boiler/2', 'the id sequence continues');
  // A changed rule does not inherit the old rule's state.
  const changed = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 85 }, for_s: 600 }]));
  changed.restore(state, 0);
  assert.equal(changed.trackCount, 0);
});

test('live evaluation and a replay of the same sequence give identical events', () => {
  const cfg = config([
    { name: 'hot', value: 'temp', when: { above: 80 }, clear: { below: 75 }, for_s: 20, clear_for_s: 10 },
    { name: 'spike', value: 'temp', when: { zscore_above: 3 }, warmup: 10 },
  ]);
  const seq: [number, number][] = [];
  let seed = 3;
  for (let t = 0; t < 2000; t += 3) {
    seed = (seed * 48271) % 2147483647;
    seq.push([t, 70 + ((seed % 2000) / 100) * (t > 1000 ? 1.2 : 1)]);
  }
  const ids = (e: RuleEngine) => {
    const out: string[] = [];
    for (const [t, v] of seq) {
      for (const ev of e.onReading({ deviceId: 'd', ts: t * S, values: { temp: v } }, t * S))
        out.push(`${ev.kind} ${ev.alert.id} ${t}`);
      for (const ev of e.tick(t * S + 1, t * S)) out.push(`${ev.kind} ${ev.alert.id} tick ${t}`);
    }
    return out;
  };
  const a = ids(new RuleEngine(cfg));
  assert.ok(a.length > 2, `sequence raises something (${a.length})`);
  assert.deepEqual(ids(new RuleEngine(cfg)), a);
});

test('rules the schema cannot check are refused with their index: duplicate names, no_data as clear', () => {
  assert.throws(
    () =>
      compileRules(
        config([
          { name: 'x', value: 'a', when: { above: 1 } },
          { name: 'x', value: 'b', when: { above: 1 } },
        ]),
      ),
    /analytics.rules\[1\]: rule name "x" is used twice/,
  );
  assert.throws(
    () => compileRules(config([{ name: 'x', value: 'a', when: { above: 1 }, clear: { no_data_s: 5 } }])),
    /clear cannot be no_data_s/,
  );
  const errors = [
    ...Value.Errors(AnalyticsConfigSchema, { rules: [{ name: 'x', value: 'a', when: { above: 1, below: 2 } }] }),
  ];
  assert.ok(errors.length > 0, 'a condition with two keys is refused');
});

test('max_tracks bounds memory: devices beyond it are not evaluated and are counted', () => {
  const e = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 } }], { max_tracks: 2 }));
  run(e, [[0, 90]], 'a');
  run(e, [[0, 90]], 'b');
  assert.deepEqual(run(e, [[0, 90]], 'c'), []);
  assert.equal(e.counters.untracked, 1);
  assert.equal(e.trackCount, 2);
});
