import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CodecError,
  createRegistry,
  decode,
  encodeBatch,
  encodeReading,
  type SchemaSpec,
} from '../../../src/codec/index.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { EDGE_NUMBERS, loadCloudDecoder, prng, randomBatch, randomReading, withoutSource } from './helpers.js';

// Property: decode(encode(x)) deep-equals x (Object.is per value: NaN, -0, ±Infinity included),
// for single readings and batches, with and without deflate, on any schema the encoder picks or is
// forced to; and the independent cloud decoder agrees byte for byte on the same messages.

test('round trip: 3,000 random single readings, edge values included', async () => {
  const rnd = prng(1);
  const cloud = await loadCloudDecoder();
  for (let i = 0; i < 3000; i++) {
    const r = randomReading(rnd);
    const forced = rnd() < 0.2 ? { schemaId: Math.floor(rnd() * 4) } : {};
    const plain = encodeReading(r, { ...forced, compress: 'never' });
    const auto = encodeReading(r, forced);
    assert.ok(auto.length <= plain.length, 'deflate is used only when smaller');
    assert.deepEqual(decode(plain), [r], `case ${i}: ${plain.toString('hex')}`);
    assert.deepEqual(decode(auto), [r]);
    assert.deepEqual(cloud.decodeReadings(plain), [withoutSource(r)], `cloud case ${i}`);
  }
});

test('round trip: 600 random batches, non-monotonic timestamps, with and without deflate', async () => {
  const rnd = prng(2);
  const cloud = await loadCloudDecoder();
  for (let i = 0; i < 600; i++) {
    const rs = randomBatch(rnd);
    const plain = encodeBatch(rs, { compress: 'never' });
    const auto = encodeBatch(rs);
    assert.ok(auto.length <= plain.length);
    assert.deepEqual(decode(plain), rs, `case ${i}`);
    assert.deepEqual(decode(auto), rs);
    assert.deepEqual(cloud.decodeReadings(auto), rs.map(withoutSource));
  }
});

test('round trip: every edge value in every schema field, alone and in a batch', () => {
  const fields = ['temperature', 'humidity', 'pressure', 'voltage', 'current', 'energy', 'lat', 'alt', 'other'];
  for (const name of fields) {
    const rs: Reading[] = EDGE_NUMBERS.map((v, i) => ({
      deviceId: 'edge',
      ts: 1_700_000_000_000 - i * 7,
      values: { [name]: v, online: i % 2 === 0 },
      quality: 'good',
      source: 'mqtt',
    }));
    for (const r of rs) assert.deepEqual(decode(encodeReading(r)), [r], `${name}=${String(r.values[name])}`);
    assert.deepEqual(decode(encodeBatch(rs)), rs);
  }
});

test('round trip: 0-length and 255-length device ids; 256 bytes is refused', () => {
  for (const id of ['', 'x'.repeat(255), 'é'.repeat(127)]) {
    const r: Reading = { deviceId: id, ts: 5, values: { temperature: 1 }, quality: 'bad', source: 'mqtt' };
    assert.deepEqual(decode(encodeReading(r)), [r]);
  }
  assert.throws(
    () => encodeReading({ deviceId: 'é'.repeat(128), ts: 5, values: {}, quality: 'good', source: 'mqtt' }),
    (e: unknown) => e instanceof CodecError && e.code === 'EGW_CODEC_ENCODE',
  );
});

test('declared scales round-trip exactly: 3.31 V and 1013.25 hPa stay in their fields', () => {
  const r: Reading = {
    deviceId: 'd',
    ts: 1,
    values: {
      temperature: 21,
      humidity: 40,
      pressure: 1013.25,
      voltage: 3.31,
      online: true,
      alarm: false,
      low_battery: true,
    },
    quality: 'good',
    source: 'mqtt',
  };
  const b = encodeReading(r);
  assert.equal(b[5]! & 0x1c, 0, 'reading flags: no state map, nothing by name, no units');
  assert.deepEqual(decode(b), [r]);
});

test('a site schema (id ≥ 128) round-trips with its registry and is refused clearly without it', () => {
  const site: SchemaSpec = {
    id: 200,
    name: 'press-line',
    fields: [
      { name: 'force', type: 'number', scale: 1, base: 5000 },
      { name: 'stroke', type: 'number', scale: 2 },
      { name: 'door_open', type: 'bool' },
    ],
  };
  const registry = createRegistry([site]);
  const r: Reading = {
    deviceId: 'p',
    ts: 9,
    values: { force: 498.7, stroke: 12.5, door_open: false },
    quality: 'good',
    source: 'mqtt',
  };
  const b = encodeReading(r, { registry });
  assert.deepEqual(decode(b, { registry }), [r]);
  assert.throws(
    () => decode(b),
    (e: unknown) => e instanceof CodecError && e.code === 'EGW_CODEC_SCHEMA',
  );
  assert.throws(
    () => createRegistry([{ ...site, id: 5 }]),
    (e: unknown) => e instanceof CodecError && e.code === 'EGW_CODEC_SCHEMA',
  );
  assert.throws(
    () => createRegistry([site, { ...site, id: 201 }]),
    (e: unknown) => e instanceof CodecError && /same fields/.test(e.message),
  );
});

test('schema choice does not depend on what was encoded before', () => {
  const a: Reading = { deviceId: 'd', ts: 1, values: { voltage: 230.1, current: 1 }, quality: 'good', source: 'mqtt' };
  const first = encodeReading(a).toString('hex');
  encodeReading({ ...a, values: { voltage: 3.3, temperature: 20 } });
  assert.equal(encodeReading(a).toString('hex'), first);
});

test('round trip: generated fast paths — full-schema readings mixed with general ones, pool growth, device ids changing', async () => {
  // The generated writer/reader (src/codec/fast.ts) take readings whose values are exactly a
  // schema's fields; any other reading in the same batch goes the general way, and the deltas of
  // both must chain. Batches up to 3,000 readings also outgrow the encoder's 8 KiB pool mid-message.
  const rnd = prng(9);
  const cloud = await loadCloudDecoder();
  const ids = ['press-07-line-b', 'ß-sensor', '', 'x'.repeat(255), 'press-07-line-b'];
  const num = (scale: number, span: number): number => {
    const p = 10 ** scale;
    const pick = rnd();
    const k = pick < 0.05 ? (2 ** 51 - 1) * (rnd() < 0.5 ? -1 : 1) : Math.round((rnd() - 0.5) * span * p);
    return k / p;
  };
  for (let i = 0; i < 120; i++) {
    const deviceId = ids[i % ids.length]!;
    const n = i % 10 === 9 ? 3000 : 1 + Math.floor(rnd() * 60);
    let ts = 1_732_262_400_000 + Math.floor(rnd() * 1e9);
    const rs: Reading[] = [];
    for (let j = 0; j < n; j++) {
      ts += Math.floor((rnd() - 0.2) * 5000);
      const values: Reading['values'] = {
        temperature: num(2, 200),
        humidity: num(2, 100),
        pressure: 1013.25 + num(1, 20),
        voltage: num(3, 10),
        online: rnd() < 0.5,
        alarm: rnd() < 0.1,
        low_battery: rnd() < 0.1,
      };
      const kind = rnd();
      if (kind < 0.05) delete values.humidity;
      else if (kind < 0.1) values.co2 = 412;
      else if (kind < 0.12) values.temperature = 0.1234567;
      else if (kind < 0.14) values.alarm = null;
      const r: Reading = { deviceId, ts, values, quality: kind > 0.97 ? 'bad' : 'good', source: 'mqtt' };
      if (kind > 0.99) r.units = { temperature: '°C' };
      rs.push(r);
    }
    for (const compress of ['never', 'auto'] as const) {
      const b = encodeBatch(rs, { compress });
      assert.deepEqual(decode(b), rs, `case ${i} ${compress}`);
      assert.deepEqual(cloud.decodeReadings(b), rs.map(withoutSource), `cloud case ${i} ${compress}`);
      const one = encodeReading(rs[0]!, { compress });
      assert.deepEqual(decode(one), [rs[0]]);
    }
  }
});
