import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Encoder } from 'cbor-x';
import { decodeSensorMessage } from '../../../src/broker/ingest.js';
import { decodePayload, PayloadError } from '../../../src/coap/payload.js';
import { mapPayload } from '../../../src/drivers/coap/map.js';
import {
  MAX_NESTING_DEPTH,
  MAX_STRING_BYTES,
  MAX_TS,
  normaliseDocument,
  normaliseJson,
  normaliseReadings,
  parseTimestamp,
} from '../../../src/pipeline/normalise.js';
import type { Reading } from '../../../src/pipeline/reading.js';

const NOW = 1_700_000_000_000;
const json = (s: string) => normaliseJson(Buffer.from(s), 'd1', 'mqtt', NOW);
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });

describe('normaliser: hostile inputs', () => {
  it('__proto__ never sets a prototype; it is left out and reported', () => {
    const n = json('{"__proto__":{"polluted":1},"t":1}');
    assert.equal(n.readings.length, 1);
    const values = n.readings[0]!.values;
    assert.equal(Object.getPrototypeOf(values), Object.prototype);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.deepEqual(Object.keys(values), ['t']);
    assert.match(n.problems![0]!.at, /__proto__/);
    // Nested __proto__ under a name is harmless as a dotted name but still refused as a segment name? It is a
    // value name "a.__proto__": allowed by the pattern and stored as an own property, never a prototype.
    const m = json('{"a":{"__proto__":{"x":1}}}');
    assert.equal(Object.getPrototypeOf(m.readings[0]!.values), Object.prototype);
    assert.ok(Object.hasOwn(m.readings[0]!.values, 'a.__proto__.x'));
    // constructor / prototype are ordinary names.
    assert.deepEqual(json('{"constructor":1,"prototype":2}').readings[0]!.values, { constructor: 1, prototype: 2 });
  });

  it('huge nesting is cut at the documented depth without recursion beyond it', () => {
    const deep = '{"a":'.repeat(100000) + '1' + '}'.repeat(100000);
    const n = json(`{"t":1,"x":${deep}}`);
    assert.deepEqual(n.readings[0]!.values, { t: 1 });
    assert.match(n.problems![0]!.reason, new RegExp(`deeper than ${MAX_NESTING_DEPTH}`));
    assert.deepEqual(json('{"a":{"b":{"c":{"d":1}}}}').readings[0]!.values, { 'a.b.c.d': 1 });
    assert.equal(json('{"a":{"b":{"c":{"d":{"e":1}}}}}').readings.length, 0);
    // Deep arrays (JSON.parse handles them) are just an array value: left out.
    const arr = '['.repeat(50000) + ']'.repeat(50000);
    const r = json(`{"t":1,"x":${arr}}`);
    assert.deepEqual(r.readings[0]!.values, { t: 1 });
  });

  it('strings are bounded in UTF-8 bytes, not characters', () => {
    const ok = 'é'.repeat(MAX_STRING_BYTES / 2); // 2 bytes each: exactly the bound
    const over = 'é'.repeat(MAX_STRING_BYTES / 2 + 1);
    const n = normaliseDocument({ a: ok, b: over, c: 'x'.repeat(10_000_000) }, 'd1', 'mqtt', NOW);
    assert.deepEqual(Object.keys(n.readings[0]!.values), ['a']);
    assert.equal(n.problemCount, 2);
    assert.match(n.problems![0]!.reason, /longer than 255 UTF-8 bytes/);
  });

  it('strings with a lone surrogate (valid JSON, not UTF-8) are left out, in values and units', () => {
    const n = json('{"t":1,"s":"a\\ud800b","pair":"\\ud83d\\ude00","units":{"t":"\\udc00"}}');
    assert.deepEqual(n.readings[0]!.values, { t: 1, pair: '😀' });
    assert.equal(n.readings[0]!.units, undefined);
    assert.equal(n.problemCount, 2);
  });

  it("the string bound is the codec's (whatever the boundary accepts, the outbox can encode)", async () => {
    const format: Record<string, unknown> = await import('../../../src/codec/format.js');
    // The codec's constant exists once its string kind is merged (codec branch); then they must agree.
    if ('MAX_STRING_BYTES' in format) assert.equal(MAX_STRING_BYTES, format['MAX_STRING_BYTES']);
    assert.equal(MAX_STRING_BYTES, 255);
  });

  it('arrays, byte strings, dates, undefined and non-finite numbers are left out', () => {
    const n = normaliseDocument(
      {
        t: 1,
        a: [1, 2],
        b: new Uint8Array([1]),
        c: new Date(0),
        d: undefined,
        e: NaN,
        f: Infinity,
        g: 10n,
        h: () => 1,
      },
      'd1',
      'coap',
      NOW,
    );
    assert.deepEqual(n.readings[0]!.values, { t: 1 });
    assert.equal(n.problemCount, 8);
  });

  it('problems are counted in full but listed up to a bound', () => {
    const doc = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`a${i}`, [i]]));
    const n = normaliseDocument({ ...doc, t: 1 }, 'd1', 'mqtt', NOW);
    assert.equal(n.problemCount, 5000);
    assert.equal(n.problems!.length, 20);
  });

  it('a reading with nothing representable, another device or a bad ts is refused whole', () => {
    assert.equal(json('{"a":[1]}').readings.length, 0);
    const other = json('{"deviceId":"d2","t":1}');
    assert.equal(other.readings.length, 0);
    assert.equal(other.code, 'EGW_INGEST_DEVICE_ID');
    assert.equal(json('{"deviceId":"d1","t":1}').readings.length, 1);
    for (const ts of ['2e15', '-1', '"1"', '"2024-05-01"', '"2024-05-01T10:00:00"', 'true', '{}'])
      assert.equal(json(`{"t":1,"ts":${ts}}`).readings.length, 0, ts);
  });
});

describe('normaliser: timestamps equal what the codec carries', () => {
  it('epoch ms in [0, 2^50); ISO 8601 with a zone; absent or null = receive time', () => {
    assert.equal(MAX_TS, 2 ** 50 - 1);
    assert.equal(parseTimestamp(MAX_TS, NOW), MAX_TS);
    assert.equal(parseTimestamp(MAX_TS + 1, NOW), -1);
    assert.equal(parseTimestamp(2e15, NOW), -1);
    assert.equal(parseTimestamp(1.6, NOW), 2);
    assert.equal(parseTimestamp('2024-05-01T12:00:00Z', NOW), Date.parse('2024-05-01T12:00:00Z'));
    assert.equal(parseTimestamp('2024-05-01T14:00:00.5+02:00', NOW), Date.parse('2024-05-01T12:00:00.5Z'));
    assert.equal(parseTimestamp('1', NOW), -1);
    assert.equal(parseTimestamp(undefined, NOW), NOW);
    assert.equal(parseTimestamp(null, NOW), NOW);
    assert.equal(parseTimestamp(new Date(5), NOW), 5);
  });
});

describe('normaliser: typed readings (codec, drivers)', () => {
  const base: Reading = { deviceId: 'd1', ts: 1, values: { t: 1 }, quality: 'good', source: 'serial' };
  it('passes good readings through without a copy', () => {
    const n = normaliseReadings([base], NOW);
    assert.equal(n.readings[0], base);
    assert.equal(n.problemCount, 0);
  });
  it('leaves out what breaks a limit and refuses an out-of-range ts', () => {
    const bad = { ...base, values: { t: 1, s: 'x'.repeat(2000), 'bad name': 2 }, units: { t: 'C', s: 'm' } };
    const n = normaliseReadings([bad as Reading], NOW);
    assert.deepEqual(n.readings[0]!.values, { t: 1 });
    assert.deepEqual(n.readings[0]!.units, { t: 'C' });
    assert.equal(n.problemCount, 2);
    assert.equal(normaliseReadings([{ ...base, ts: 2e15 }], NOW).readings.length, 0);
    assert.equal(normaliseReadings([{ ...base, deviceId: 'a b' }], NOW).code, 'EGW_INGEST_DEVICE_ID');
  });
});

describe('one normaliser for MQTT, CoAP (JSON and CBOR) and downstream CoAP', () => {
  const docs: unknown[] = [
    { temperature: 21.5, status: 'ok', fw: '1.4.2', door: true, env: { rh: 40 }, deviceId: 'd1' },
    { ts: '2024-05-01T12:00:00Z', values: { a: 1, b: 'x' }, quality: 'uncertain', units: { a: 'm' } },
    { t: 1, arr: [1], long: 'x'.repeat(256), ok: 'é'.repeat(127) },
    { t: 1, ts: 2e15 },
    { __proto__: 1, t: 2 },
    [{ a: 1 }, { a: [2] }, { a: 3, ts: 5 }],
    { values: { t: 1 }, extra: 1 },
  ];
  for (const doc of docs) {
    it(JSON.stringify(doc).slice(0, 60), () => {
      const text = JSON.stringify(doc);
      const reference = normaliseDocument(JSON.parse(text), 'd1', 'mqtt', NOW);
      const strip = (rs: readonly Reading[]) => rs.map(({ source: _s, ...r }) => r);
      const mqtt = decodeSensorMessage('sensors/d1/data', Buffer.from(text), NOW);
      const viaCoap = (payload: Buffer, ct: number) => {
        try {
          return decodePayload(payload, ct, 'd1', NOW).readings;
        } catch (err) {
          assert.ok(err instanceof PayloadError);
          return [];
        }
      };
      const viaPoll = (payload: Buffer, ct: number) => {
        try {
          return mapPayload(payload, ct, { deviceId: 'd1', valueName: 'v', nowMs: NOW }).map((s): Reading => ({
            deviceId: 'd1',
            ts: s.ts!,
            values: s.values,
            quality: s.quality,
            source: 'coap-poll',
            ...(s.units ? { units: s.units } : {}),
          }));
        } catch (err) {
          assert.ok(err instanceof PayloadError);
          return [];
        }
      };
      const want = strip(reference.readings);
      assert.deepEqual(strip(mqtt?.ok ? mqtt.readings : []), want, 'mqtt');
      assert.deepEqual(strip(viaCoap(Buffer.from(text), 50)), want, 'coap json');
      assert.deepEqual(strip(viaCoap(Buffer.from(cbor.encode(JSON.parse(text))), 60)), want, 'coap cbor');
      assert.deepEqual(strip(viaPoll(Buffer.from(text), 50)), want, 'downstream coap');
    });
  }
});
