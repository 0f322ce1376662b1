import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../../../src/drivers/modbus/bus.js';

const tick = () => new Promise((r) => setImmediate(r));

test('bus: one job at a time; urgent jobs go ahead of waiting ones, never interrupt the running one', async () => {
  const bus = new Bus();
  const log: string[] = [];
  let release!: () => void;
  const first = bus.run(async () => {
    log.push('poll-1 start');
    await new Promise<void>((r) => (release = r));
    log.push('poll-1 end');
  });
  const p2 = bus.run(async () => void log.push('poll-2'));
  const w = bus.run(async () => void log.push('write'), true);
  await tick();
  assert.deepEqual(log, ['poll-1 start']);
  assert.equal(bus.waiting, 2);
  release();
  await Promise.all([first, p2, w]);
  assert.deepEqual(log, ['poll-1 start', 'poll-1 end', 'write', 'poll-2']);
  assert.equal(bus.waiting, 0);
});

test('bus: a job that throws (synchronously or not) rejects its caller and releases the bus', async () => {
  const bus = new Bus();
  const sync = bus.run((): Promise<number> => {
    throw new Error('not sent');
  });
  const async = bus.run(async () => {
    throw new Error('timed out');
  });
  const ok = bus.run(async () => 42);
  await assert.rejects(sync, /not sent/);
  await assert.rejects(async, /timed out/);
  assert.equal(await ok, 42);
});
