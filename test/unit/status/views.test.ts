import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import { StatusPageConfigSchema } from '../../../src/status/config.js';
import { SampleRing } from '../../../src/status/series.js';
import { deviceState, seriesOf } from '../../../src/status/views.js';

test('SampleRing: bounded, oldest first, downsampled by bucket max so a short spike survives', () => {
  const r = new SampleRing(['a', 'b'] as const, 5);
  for (let i = 0; i < 8; i++) r.add(i * 10, { a: i, b: i === 6 ? 100 : 0 });
  assert.equal(r.length, 5);
  const all = r.downsample(10);
  assert.deepEqual(all.t, [30, 40, 50, 60, 70]);
  assert.deepEqual(all.lanes.a, [3, 4, 5, 6, 7]);
  const two = r.downsample(2);
  assert.equal(two.t.length, 2);
  assert.equal(Math.max(...two.lanes.b), 100);
  assert.deepEqual(r.downsample(10, 55).t, [60, 70]);
  assert.deepEqual(new SampleRing(['a'] as const, 3).downsample(10), { t: [], lanes: { a: [] } });
});

test('deviceState: offline when the source says so, quiet after quiet_after_s of silence, else online', () => {
  assert.equal(deviceState(false, 1000, 1000, 60), 'offline');
  assert.equal(deviceState(true, 1000, 1000 + 60_000, 60), 'online');
  assert.equal(deviceState(true, 1000, 1000 + 60_001, 60), 'quiet');
});

test('seriesOf: numeric values only, per name, in row order', () => {
  const s = seriesOf([
    { ts: 1, values: { t: 1, ok: true, s: 'x' } },
    { ts: 2, values: { t: null, h: 5 } },
    { ts: 3, values: { t: 3, h: Number.NaN } },
  ]);
  assert.deepEqual(
    [...s],
    [
      ['t', [1, 3]],
      ['h', [5]],
    ],
  );
});

test('status_page config: defaults are loopback-friendly and bounded; unknown keys are errors', () => {
  const d = Value.Default(StatusPageConfigSchema, {}) as Record<string, unknown>;
  assert.deepEqual(d, {
    enabled: true,
    update_interval_ms: 2000,
    quiet_after_s: 300,
    max_clients: 8,
    require_token: 'auto',
    session_hours: 12,
  });
  assert.equal(Value.Check(StatusPageConfigSchema, d), true);
  assert.equal(Value.Check(StatusPageConfigSchema, { ...d, update_interval_ms: 10 }), false);
  assert.equal(Value.Check(StatusPageConfigSchema, { ...d, require_token: 'never' }), false);
  assert.equal(Value.Check(StatusPageConfigSchema, { ...d, port: 80 }), false);
});
