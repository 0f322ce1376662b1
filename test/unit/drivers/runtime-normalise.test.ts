import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { DeviceRegistry } from '../../../src/devices/registry.js';
import { DriverMetrics } from '../../../src/drivers/metrics.js';
import { DriverRuntime } from '../../../src/drivers/runtime.js';
import type { DriverContext, DriverType } from '../../../src/drivers/types.js';
import { Pipeline, type Refusal } from '../../../src/pipeline/pipeline.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { openDatabase } from '../../../src/store/db.js';

test('driver samples pass the shared normaliser: bad fields left out and kept, an out-of-range ts refused', async () => {
  const log = pino({ level: 'silent' });
  const db = openDatabase({ path: ':memory:', durability: 'normal' });
  const devices = new DeviceRegistry(db);
  const pipeline = new Pipeline({ log, maxPending: 1000 });
  const accepted: Reading[] = [];
  pipeline.addSink({ name: 'test', accept: (rs) => void accepted.push(...rs) });
  const refusals: Refusal[] = [];
  pipeline.setRefusalSink({ refuse: (r) => void refusals.push(r) });
  let ctx!: DriverContext;
  const type: DriverType = {
    type: 'fake',
    schema: Type.Object({}),
    source: 'serial',
    transport: 'serial',
    create: (_c, c) => {
      ctx = c;
      return { start: async () => {}, stop: async () => {}, devices: () => ['drv-1'] };
    },
  };
  const rt = new DriverRuntime({
    type: type as DriverType<never>,
    config: { id: 'drv-1', type: 'fake', buffer_size: 100 },
    log,
    pipeline,
    devices,
    metrics: new DriverMetrics(new Registry()),
  });
  await rt.start();
  ctx.emit([
    { values: { t: 21.5, state: 'RUN', blob: 'x'.repeat(5000) }, quality: 'good', ts: 1000 },
    { values: { t: 1 }, quality: 'good', ts: 2e15 },
    { values: { t: 2 }, quality: 'good', ts: 2000 },
  ]);
  for (let i = 0; i < 50 && accepted.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(
    accepted.map((r) => r.values),
    [{ t: 21.5, state: 'RUN' }, { t: 2 }],
  );
  assert.equal(refusals.length, 2);
  assert.equal(refusals[0]!.accepted, 1);
  assert.match(refusals[0]!.reason, /blob: string longer than 255/);
  assert.equal(refusals[1]!.accepted, 0);
  assert.match(refusals[1]!.reason, /ts must be/);
  assert.equal(refusals[1]!.deviceId, 'drv-1');
  assert.equal(refusals[1]!.transport, 'serial');
  assert.equal(pipeline.counters.invalid, 2);
  await rt.stop();
  devices.close();
  db.close();
});
