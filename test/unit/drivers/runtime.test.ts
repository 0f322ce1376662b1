import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { DeviceRegistry } from '../../../src/devices/registry.js';
import { DriverMetrics } from '../../../src/drivers/metrics.js';
import { DriverRuntime } from '../../../src/drivers/runtime.js';
import type { Driver, DriverContext, DriverType } from '../../../src/drivers/types.js';
import { Pipeline, type Sink } from '../../../src/pipeline/pipeline.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { openDatabase } from '../../../src/store/db.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A runtime around a fake driver whose context the test drives; a sink the test can hold back. */
function rig(opts: { bufferSize?: number; maxPending?: number; driver?: Partial<Driver> } = {}) {
  const db = openDatabase({ path: ':memory:', durability: 'normal' });
  const devices = new DeviceRegistry(db);
  const pipeline = new Pipeline({ log, maxPending: opts.maxPending ?? 1000 });
  const accepted: Reading[] = [];
  let hold: Promise<void> | undefined;
  const sink: Sink = {
    name: 'outbox',
    accept: (rs) => {
      accepted.push(...rs);
      return hold;
    },
  };
  pipeline.addSink(sink);
  const registry = new Registry();
  let ctx!: DriverContext;
  const type: DriverType = {
    type: 'fake',
    schema: Type.Object({}),
    source: 'serial',
    transport: 'serial',
    create: (_c, c) => {
      ctx = c;
      return { start: async () => {}, stop: async () => {}, devices: () => ['drv-1'], ...opts.driver };
    },
  };
  const rt = new DriverRuntime({
    type: type as DriverType<never>,
    config: { id: 'drv-1', type: 'fake', buffer_size: opts.bufferSize ?? 100 },
    log,
    pipeline,
    devices,
    metrics: new DriverMetrics(registry),
    maxBatch: 10,
    retryMs: 20,
  });
  return {
    rt,
    devices,
    accepted,
    registry,
    ctx: () => ctx,
    setHold: (p: Promise<void> | undefined) => (hold = p),
    close: () => {
      devices.close();
      db.close();
    },
  };
}
const sample = (v: number) => ({ values: { v }, quality: 'good' as const, ts: 1_700_000_000_000 + v });

test('samples become readings in order; status counts them; the device registry sees the driver online', async () => {
  const r = rig();
  await r.rt.start();
  r.ctx().setConnected(true);
  r.ctx().emit([sample(1), sample(2), sample(3)]);
  for (let i = 0; i < 100 && r.rt.status().readings < 3; i++) await sleep(5);
  assert.deepEqual(
    r.accepted.map((x) => x.values['v']),
    [1, 2, 3],
  );
  const st = r.rt.status();
  assert.equal(st.state, 'running');
  assert.equal(st.connected, true);
  assert.equal(st.readings, 3);
  assert.equal(st.lastReadingTs, 1_700_000_000_003);
  assert.equal(r.devices.get('drv-1')?.online, true);
  await r.rt.stop();
  assert.equal(r.rt.status().state, 'stopped');
  assert.equal(r.devices.get('drv-1')?.online, false, 'a stopped driver is offline');
  r.close();
});

test('a full pipeline is backpressure: readings wait and are retried, nothing lost while within buffer_size', async () => {
  const r = rig({ maxPending: 10, bufferSize: 1000 });
  let release!: () => void;
  r.setHold(new Promise<void>((res) => (release = res)));
  await r.rt.start();
  r.ctx().emit(Array.from({ length: 50 }, (_, i) => sample(i)));
  await sleep(50);
  assert.equal(r.accepted.length, 10, 'the first batch is in the pipeline, held');
  assert.ok(r.rt.status().buffered >= 30, 'the rest waits in the buffer');
  r.setHold(undefined);
  release();
  for (let i = 0; i < 200 && r.accepted.length < 50; i++) await sleep(10);
  assert.deepEqual(
    r.accepted.map((x) => x.values['v']),
    Array.from({ length: 50 }, (_, i) => i),
    'every reading, in order, once',
  );
  assert.equal(r.rt.status().dropped, 0);
  await r.rt.stop();
  r.close();
});

test('beyond buffer_size the oldest readings are dropped and counted, the newest kept', async () => {
  const r = rig({ maxPending: 10, bufferSize: 20 });
  let release!: () => void;
  r.setHold(new Promise<void>((res) => (release = res)));
  await r.rt.start();
  r.ctx().emit(Array.from({ length: 10 }, (_, i) => sample(i)));
  await sleep(30);
  r.ctx().emit(Array.from({ length: 100 }, (_, i) => sample(100 + i)));
  await sleep(30);
  assert.equal(r.rt.status().dropped, 80);
  r.setHold(undefined);
  release();
  for (let i = 0; i < 200 && r.accepted.length < 30; i++) await sleep(10);
  const kept = r.accepted.slice(10).map((x) => x.values['v']);
  assert.deepEqual(
    kept,
    Array.from({ length: 20 }, (_, i) => 180 + i),
    'the newest 20 survive',
  );
  const dropped = (await r.registry.getMetricsAsJSON()).find(
    (m) => m.name === 'edge_gateway_driver_readings_dropped_total',
  );
  assert.equal(dropped?.values.find((v) => v.labels['reason'] === 'buffer_full')?.value, 80);
  await r.rt.stop();
  r.close();
});

test('a driver that throws on start is disabled, not fatal; errors it reports are counted by kind', async () => {
  const r = rig({
    driver: {
      start: async () => {
        throw new Error('port exploded');
      },
    },
  });
  await r.rt.start();
  const st = r.rt.status();
  assert.equal(st.state, 'failed');
  assert.match(st.reason ?? '', /port exploded/);
  r.ctx().error('checksum', { detail: 'bad' });
  r.ctx().error('checksum');
  assert.equal(r.rt.status().errors.checksum, 2);
  await r.rt.stop();
  r.close();
});
