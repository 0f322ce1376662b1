import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Pipeline, type IngestMeta, type Sink } from '../../../src/pipeline/pipeline.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { GatewayError } from '../../../src/errors.js';

const log = pino({ level: 'silent' });
const meta: IngestMeta = { topic: 'sensors/press-07/data', origin: 'test' };
const reading = (v: number): Reading => ({
  deviceId: 'press-07',
  ts: 1_700_000_000_000 + v,
  values: { v },
  quality: 'good',
  source: 'mqtt',
});

/** A sink whose commit the test resolves or rejects by hand. */
function manualSink(name = 'outbox') {
  const got: Reading[][] = [];
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const sink: Sink = {
    name,
    accept(readings) {
      got.push([...readings]);
      return new Promise<void>((resolve, reject) => pending.push({ resolve, reject }));
    },
  };
  return { sink, got, pending };
}

test('ingest resolves only after every sink committed (acknowledge after commit)', async () => {
  const p = new Pipeline({ log, maxPending: 10 });
  const { sink, pending } = manualSink();
  const seen: Reading[] = [];
  p.addSink({ name: 'sync', accept: (rs) => void seen.push(...rs) });
  p.addSink(sink);
  let acked = false;
  const done = p.ingest([reading(1), reading(2)], meta).then(() => (acked = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(acked, false, 'not acknowledged before the commit');
  assert.equal(p.depth, 2);
  assert.equal(seen.length, 2);
  pending[0]!.resolve();
  await done;
  assert.equal(acked, true);
  assert.equal(p.depth, 0);
  assert.equal(p.counters.accepted, 2);
});

test('a failed commit rejects the ingest (the source must not acknowledge) and frees the pending count', async () => {
  const p = new Pipeline({ log, maxPending: 10 });
  const { sink, pending } = manualSink();
  p.addSink(sink);
  const events: Reading[] = [];
  p.on('reading', (r) => events.push(r));
  const done = p.ingest([reading(1)], meta);
  pending[0]!.reject(new GatewayError('EGW_STORE_FULL', 'disk full'));
  await assert.rejects(done, /disk full/);
  assert.equal(p.depth, 0);
  assert.equal(p.counters.accepted, 0);
  assert.equal(events.length, 0, 'no reading event for an uncommitted reading');
});

test('beyond maxPending the pipeline refuses with EGW_PIPELINE_OVERLOAD and accepts again once drained', async () => {
  const p = new Pipeline({ log, maxPending: 3 });
  const { sink, pending } = manualSink();
  p.addSink(sink);
  const first = p.ingest([reading(1), reading(2)], meta);
  await assert.rejects(p.ingest([reading(3), reading(4)], meta), (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, 'EGW_PIPELINE_OVERLOAD');
    return true;
  });
  assert.equal(p.counters.refused, 2);
  pending[0]!.resolve();
  await first;
  const again = p.ingest([reading(3), reading(4)], meta);
  pending[1]!.resolve();
  await again;
  assert.equal(p.counters.accepted, 4);
});

test('an idle pipeline takes a batch larger than maxPending (a retrying source cannot livelock)', async () => {
  const p = new Pipeline({ log, maxPending: 3 });
  const { sink, pending } = manualSink();
  p.addSink(sink);
  const big = p.ingest([reading(1), reading(2), reading(3), reading(4), reading(5)], meta);
  assert.equal(p.depth, 5);
  await assert.rejects(p.ingest([reading(6)], meta), /pipeline full/, 'but nothing more while it is pending');
  pending[0]!.resolve();
  await big;
  assert.equal(p.counters.accepted, 5);
});

test('stages run in order, may change or drop a reading; a throwing stage is skipped, the reading kept', async () => {
  const p = new Pipeline({ log, maxPending: 10 });
  const out: Reading[] = [];
  p.addSink({ name: 'collect', accept: (rs) => void out.push(...rs) });
  p.addStage('scale', (r) => ({ ...r, values: { v: (r.values['v'] as number) * 10 } }));
  p.addStage('faulty', () => {
    throw new Error('plugin bug');
  });
  const removeDrop = p.addStage('drop-odd', (r) => ((r.values['v'] as number) % 20 === 0 ? r : null));
  await p.ingest([reading(1), reading(2), reading(3)], meta);
  assert.deepEqual(
    out.map((r) => r.values['v']),
    [20],
  );
  assert.equal(p.counters.dropped, 2);
  assert.equal(p.counters.stageErrors, 3);
  removeDrop();
  await p.ingest([reading(1)], meta);
  assert.deepEqual(
    out.map((r) => r.values['v']),
    [20, 10],
  );
});

test('a removed sink no longer receives readings; an all-dropped batch touches no sink', async () => {
  const p = new Pipeline({ log, maxPending: 10 });
  let calls = 0;
  const remove = p.addSink({ name: 'count', accept: () => void calls++ });
  await p.ingest([reading(1)], meta);
  remove();
  await p.ingest([reading(2)], meta);
  assert.equal(calls, 1);
  const remove2 = p.addSink({ name: 'count2', accept: () => void calls++ });
  p.addStage('drop-all', () => null);
  await p.ingest([reading(3)], meta);
  assert.equal(calls, 1);
  remove2();
});
