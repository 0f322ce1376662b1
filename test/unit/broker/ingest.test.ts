import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSensorMessage, sensorTopicId, type IngestResult } from '../../../src/broker/ingest.js';
import { codecDecoder } from '../../../src/broker/codec-decoder.js';
import { encodeReading } from '../../../src/codec/index.js';

const NOW = 1_700_000_000_000;
const dec = (topic: string, payload: string | Buffer) =>
  decodeSensorMessage(topic, typeof payload === 'string' ? Buffer.from(payload) : payload, NOW, [codecDecoder]);
function ok(r: IngestResult | undefined) {
  assert.ok(r && r.ok, r && !r.ok ? r.message : 'not a sensor topic');
  return r;
}
function refused(r: IngestResult | undefined, code = 'EGW_INGEST_INVALID'): string {
  assert.ok(r && !r.ok, 'expected a refusal');
  assert.equal(r.code, code);
  return r.message;
}

test('only sensors/{id}/data is ingested', () => {
  assert.equal(sensorTopicId('sensors/press-07/data'), 'press-07');
  for (const t of ['sensors/a/b/data', 'sensors//data', 'sensors/a/status', 'devices/a/data', 'sensors/a/data/x']) {
    assert.equal(sensorTopicId(t), undefined, t);
    assert.equal(dec(t, '{"t":1}'), undefined, t);
  }
});

test('flat form: every key but ts/quality/units is a value', () => {
  const r = ok(dec('sensors/press-07/data', '{"ts":1700000000123,"temperature":23.4,"door":true,"rpm":null}'));
  assert.deepEqual(r.readings, [
    {
      deviceId: 'press-07',
      ts: 1700000000123,
      values: { temperature: 23.4, door: true, rpm: null },
      quality: 'good',
      source: 'mqtt',
    },
  ]);
});

test('structured form with quality and units; ISO timestamps; receive time when ts is absent', () => {
  const r = ok(
    dec('sensors/d1/data', '{"ts":"2024-05-01T12:00:00Z","values":{"t":1},"quality":"uncertain","units":{"t":"°C"}}'),
  );
  assert.deepEqual(r.readings[0], {
    deviceId: 'd1',
    ts: Date.parse('2024-05-01T12:00:00Z'),
    values: { t: 1 },
    quality: 'uncertain',
    source: 'mqtt',
    units: { t: '°C' },
  });
  assert.equal(ok(dec('sensors/d1/data', '{"t":1}')).readings[0]!.ts, NOW);
});

test('a JSON array is a batch of readings', () => {
  const r = ok(dec('sensors/d1/data', '[{"ts":1,"a":1},{"ts":2,"a":2}]'));
  assert.deepEqual(
    r.readings.map((x) => x.ts),
    [1, 2],
  );
});

test('malformed and hostile payloads are refused with a reason, never thrown', () => {
  const cases: [string, RegExp][] = [
    ['{"t":', /not JSON/],
    ['', /not JSON/],
    ['"just a string"', /object/],
    ['42', /object/],
    ['[]', /batch/],
    ['{}', /no values/],
    ['{"ts":1}', /no values/],
    ['{"fw":[1,2]}', /fw: arrays are not values.*no value could be represented/],
    ['{"t":1e400}', /ts must be|finite/],
    ['{"ts":-5,"t":1}', /ts must be/],
    ['{"ts":2e15,"t":1}', /ts must be/],
    ['{"ts":"yesterday","t":1}', /ts must be/],
    ['{"ts":"1","t":1}', /ts must be/],
    ['{"quality":"great","t":1}', /quality/],
    ['{"values":{"t":1},"extra":2}', /unknown key/],
    ['{"values":[1]}', /values" must be an object/],
    ['{"bad name":1}', /not allowed/],
    ['{"__proto__":1}', /not allowed/],
    [JSON.stringify(Array.from({ length: 1001 }, () => ({ a: 1 }))), /batch/],
  ];
  for (const [payload, why] of cases) assert.match(refused(dec('sensors/d1/data', payload)), why, payload.slice(0, 40));
  assert.match(refused(dec('sensors/d1/data', Buffer.from([0xff, 0xfe, 0x00]))), /JSON/);
  refused(dec('sensors/d1/data', '{"deviceId":"d2","t":1}'), 'EGW_INGEST_DEVICE_ID');
});

test('strings, booleans, nested objects and a matching deviceId are accepted whole', () => {
  const r = ok(
    dec(
      'sensors/d1/data',
      '{"deviceId":"d1","temperature":21.5,"status":"ok","fw":"1.4.2","door":false,"env":{"rh":40,"co2":{"ppm":412}}}',
    ),
  );
  assert.equal(r.problems, undefined);
  assert.deepEqual(r.readings[0]!.values, {
    temperature: 21.5,
    status: 'ok',
    fw: '1.4.2',
    door: false,
    'env.rh': 40,
    'env.co2.ppm': 412,
  });
});

test('fields that cannot be represented are left out and reported; the rest is accepted', () => {
  const over = JSON.stringify(Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`v${i}`, i])));
  const a = ok(dec('sensors/d1/data', over));
  assert.equal(Object.keys(a.readings[0]!.values).length, 256);
  assert.match(a.message, /^v256: more than 256 values;.*and 41 more$/);
  const b = ok(dec('sensors/d1/data', '{"t":1,"arr":[1],"units":{"x":"m","t":"°C"}}'));
  assert.deepEqual(b.readings[0]!.values, { t: 1 });
  assert.deepEqual(b.readings[0]!.units, { t: '°C' });
  assert.match(b.message, /arr: arrays are not values; units\.x: names no value/);
  // A batch keeps its good readings; the bad one is reported by index.
  const c = ok(dec('sensors/d1/data', '[{"ts":1,"a":1},{"ts":2e15,"a":2},{"ts":3,"a":3}]'));
  assert.deepEqual(
    c.readings.map((x) => x.ts),
    [1, 3],
  );
  assert.match(c.message, /^\[1\]: ts must be/);
});

test('device ids in topics are checked at the boundary', () => {
  for (const id of ['-x', 'a b', 'x'.repeat(65), 'ä', '+', '#']) {
    refused(dec(`sensors/${id}/data`, '{"t":1}'), 'EGW_INGEST_DEVICE_ID');
  }
});

test('binary codec payloads are accepted; the topic names the device', () => {
  const bytes = Buffer.from(
    encodeReading({ deviceId: 'd1', ts: 1700000000000, values: { t: 21.5 }, quality: 'good', source: 'mqtt' }),
  );
  const r = ok(dec('sensors/d1/data', bytes));
  assert.equal(r.readings[0]!.deviceId, 'd1');
  assert.equal(r.readings[0]!.values['t'], 21.5);
  refused(dec('sensors/d2/data', bytes), 'EGW_INGEST_DEVICE_ID');
  const truncated = bytes.subarray(0, bytes.length - 1);
  assert.match(refused(dec('sensors/d1/data', truncated)), /codec/);
});
