import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { LatestValues } from '../../../src/pipeline/latest.js';
import { Pipeline } from '../../../src/pipeline/pipeline.js';
import type { Reading } from '../../../src/pipeline/reading.js';

const r = (ts: number, v: number): Reading => ({ deviceId: 'd1', ts, values: { v }, quality: 'good', source: 'mqtt' });
const meta = { topic: 'sensors/d1/data' };

test('the latest-value cache is updated after the commit, never for a reading the outbox refused', async () => {
  const pipeline = new Pipeline({ log: pino({ level: 'silent' }), maxPending: 100 });
  const latest = new LatestValues();
  pipeline.addSink(latest); // registered first, yet it runs after the committing sink
  let release!: () => void;
  let fail = false;
  pipeline.addSink({
    name: 'outbox',
    accept: () => (fail ? Promise.reject(new Error('disk full')) : new Promise<void>((resolve) => (release = resolve))),
  });
  const p = pipeline.ingest([r(1, 1)], meta);
  await new Promise((res) => setImmediate(res));
  assert.equal(latest.get('d1'), undefined, 'not before the commit');
  release();
  await p;
  assert.equal(latest.get('d1')?.values['v'], 1);
  fail = true;
  await assert.rejects(pipeline.ingest([r(2, 2)], meta), /disk full/);
  assert.equal(latest.get('d1')?.values['v'], 1, 'a refused reading never shows');
});

test('ordered by arrival: a reading with an earlier (or absurd) ts that arrives later replaces the cached one', async () => {
  const pipeline = new Pipeline({ log: pino({ level: 'silent' }), maxPending: 100 });
  const latest = new LatestValues();
  pipeline.addSink(latest);
  await pipeline.ingest([r(2 ** 50 - 1, 1)], meta);
  await pipeline.ingest([r(1_700_000_000_000, 2)], meta);
  assert.equal(latest.get('d1')?.values['v'], 2);
  await pipeline.ingest([r(5, 3), r(4, 4)], meta);
  assert.equal(latest.get('d1')?.values['v'], 4);
});

test('an after-commit sink that throws does not turn a committed reading into a refusal', async () => {
  const pipeline = new Pipeline({ log: pino({ level: 'silent' }), maxPending: 100 });
  pipeline.addSink({
    name: 'broken-view',
    afterCommit: true,
    accept: () => {
      throw new Error('bug');
    },
  });
  await pipeline.ingest([r(1, 1)], meta);
  assert.equal(pipeline.counters.accepted, 1);
});
