import { test } from 'node:test';
import assert from 'node:assert/strict';
import { binaryReadingCodec } from '../../../src/queue/codec.js';
import { ClassLane, formMessage, rowFromStored, type Row } from '../../../src/queue/lanes.js';
import type { Reading } from '../../../src/pipeline/reading.js';

const reading = (i: number): Reading => ({
  deviceId: 'd1',
  ts: 1_700_000_000_000 + i,
  values: { i },
  quality: 'good',
  source: 'mqtt',
});

const row = (seq: number, readings: Reading[], ttl = 5000): Row =>
  rowFromStored({
    seq,
    cls: 2,
    topic: 'sensors/d1/data',
    dev: 'd1',
    kind: 1,
    n: readings.length,
    payload: Buffer.from(binaryReadingCodec.encodeRow(readings)),
    ctype: null,
    t_ms: 100 + seq,
    ttl_ms: ttl,
  });

test('formMessage: reading rows become one codec batch with the first row id, time and own TTL', () => {
  const rows = [row(7, [reading(0), reading(1)], 0), row(9, [reading(2)])];
  const m = formMessage(rows, undefined, 'abc', binaryReadingCodec);
  assert.equal(m.id, 'abc-7');
  assert.equal(m.readings, 3);
  assert.equal(m.t, 107);
  assert.equal(m.ttl, 0, 'the first row TTL (0 = never), not a class default');
  assert.deepEqual(m.seqs, [7, 9]);
  assert.deepEqual(
    binaryReadingCodec.decodeRow(m.payload).map((r) => r.values['i']),
    [0, 1, 2],
  );
  const claimed = formMessage(
    rows,
    { id: 'abc-7', cls: 2, topic: 't', dev: 'd1', first_seq: 7, last_seq: 9 },
    'x',
    binaryReadingCodec,
  );
  assert.equal(claimed.id, 'abc-7');
  // an unreadable stored row throws (the outbox counts it as invalid)
  assert.throws(() =>
    formMessage([{ ...rows[0]!, payload: Buffer.from([0xc1, 0xff]) }], undefined, 'x', binaryReadingCodec),
  );
});

test('lanes: rows of one key queue FIFO; taking and dropping keep the counts', () => {
  const lane = new ClassLane();
  const a = row(1, [reading(0)]);
  const b = row(2, [reading(1)]);
  lane.push(a);
  lane.push(b);
  assert.equal(lane.live, 2);
  assert.equal(lane.byKey.get(a.key)!.length, 2);
  lane.take([a]);
  assert.equal(lane.head(), b);
  lane.drop(b);
  assert.equal(lane.live, 0);
  assert.equal(lane.head(), undefined);
  assert.equal(lane.byKey.size, 0);
  assert.equal(lane.oldest(), undefined);
});
