import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate } from 'mqtt-packet';
import { serverKeepAlive } from '../../../src/broker/auth.js';
import { codecDecoder } from '../../../src/broker/codec-decoder.js';
import { decodeSensorMessage } from '../../../src/broker/ingest.js';
import {
  CODEC_CONTENT_TYPE,
  contentTypeKind,
  encodedSize,
  withoutWillOnlyProperties,
} from '../../../src/broker/mqtt5.js';
import { encodeReading } from '../../../src/codec/index.js';

const NOW = 1_700_000_000_000;

test('Server Keep Alive: the bound for requests over keepalive_max_s, or 0 when keepalive 0 is not allowed', () => {
  const c = { keepalive_max_s: 60, allow_keepalive_zero: true };
  assert.equal(serverKeepAlive(c, 30), undefined);
  assert.equal(serverKeepAlive(c, 60), undefined);
  assert.equal(serverKeepAlive(c, 120), 60);
  assert.equal(serverKeepAlive(c, 65535), 60);
  assert.equal(serverKeepAlive(c, 0), undefined);
  assert.equal(serverKeepAlive({ ...c, allow_keepalive_zero: false }, 0), 60);
  // No bound configured: only keepalive 0 can be imposed on, with the largest value there is.
  assert.equal(serverKeepAlive({ keepalive_max_s: 0, allow_keepalive_zero: true }, 65535), undefined);
  assert.equal(serverKeepAlive({ keepalive_max_s: 0, allow_keepalive_zero: false }, 0), 65535);
});

test('content type: application/json and the codec media type select the decoder; others and hostile strings sniff', () => {
  assert.equal(contentTypeKind(undefined), 'sniff');
  assert.equal(contentTypeKind('application/json'), 'json');
  assert.equal(contentTypeKind('Application/JSON; charset=utf-8'), 'json');
  assert.equal(contentTypeKind(` ${CODEC_CONTENT_TYPE} `), 'codec');
  assert.equal(contentTypeKind('text/plain'), 'sniff');
  assert.equal(contentTypeKind(''), 'sniff');
  assert.equal(contentTypeKind(';;;'), 'sniff');
  assert.equal(contentTypeKind('application/json\u0000evil'), 'sniff');
  assert.equal(contentTypeKind('x'.repeat(65535)), 'sniff');
});

test('ingest with a content type: JSON and codec readings accepted, a mismatching codec claim refused', () => {
  const json = Buffer.from('{"temperature": 21.5}');
  const codec = encodeReading({
    deviceId: '',
    ts: NOW,
    values: { temperature: 21.5 },
    quality: 'good',
    source: 'mqtt',
  });
  for (const ct of [undefined, 'application/json', 'text/plain']) {
    const r = decodeSensorMessage('sensors/d-1/data', json, NOW, [codecDecoder], ct);
    assert.ok(r?.ok, ct);
    assert.equal(r.readings[0]!.values['temperature'], 21.5);
  }
  for (const ct of [undefined, CODEC_CONTENT_TYPE]) {
    const r = decodeSensorMessage('sensors/d-1/data', codec, NOW, [codecDecoder], ct);
    assert.ok(r?.ok, ct);
    assert.equal(r.readings[0]!.deviceId, 'd-1');
  }
  // Says codec, is JSON: refused (dead letter), not guessed.
  const bad = decodeSensorMessage('sensors/d-1/data', json, NOW, [codecDecoder], CODEC_CONTENT_TYPE);
  assert.ok(bad && !bad.ok);
  assert.equal(bad.code, 'EGW_INGEST_INVALID');
  // Says JSON, is codec bytes: parsed as JSON, which they are not.
  const notJson = decodeSensorMessage('sensors/d-1/data', codec, NOW, [codecDecoder], 'application/json');
  assert.ok(notJson && !notJson.ok);
  // Not a sensor topic: no decoding whatever the type.
  assert.equal(decodeSensorMessage('other/x', json, NOW, [codecDecoder], 'application/json'), undefined);
});

test('encodedSize is the size mqtt-packet writes for an MQTT 5 PUBLISH (QoS 0/1, with and without properties)', () => {
  const cases = [
    { topic: 'a/b', payload: Buffer.alloc(10), qos: 0 as const },
    { topic: 'a/b', payload: Buffer.alloc(200), qos: 1 as const },
    {
      topic: 't',
      payload: Buffer.from('x'),
      qos: 1 as const,
      properties: { userProperties: { k: ['v1', 'v2'] }, contentType: 'text/plain', messageExpiryInterval: 5 },
    },
  ];
  for (const c of cases) {
    const wire = generate(
      { cmd: 'publish', dup: false, retain: false, ...c, ...(c.qos ? { messageId: 42 } : {}) },
      { protocolVersion: 5 },
    );
    assert.equal(encodedSize(c), wire.length);
  }
});

test('a will published as a message loses Will Delay Interval, keeps its PUBLISH properties', () => {
  const will = { willDelayInterval: 5, userProperties: { a: '2' }, contentType: 'text/plain' };
  const out = withoutWillOnlyProperties(will);
  assert.deepEqual(out, { userProperties: { a: '2' }, contentType: 'text/plain' });
  assert.equal(will.willDelayInterval, 5); // the stored will is not changed
  const plain = { messageExpiryInterval: 3 };
  assert.equal(withoutWillOnlyProperties(plain), plain); // nothing to remove: same object, no copy
  // The copy encodes as an ordinary MQTT 5 PUBLISH.
  assert.doesNotThrow(() =>
    generate(
      { cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 0, dup: false, retain: false, properties: out },
      { protocolVersion: 5 },
    ),
  );
});
