import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeBatch } from '../../../src/codec/index.js';
import { checkAgainstModules } from '../../../src/capability/modules.js';
import { parseConfig, redactSecrets } from '../../../src/config/load.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { AWS_MAX_PAYLOAD } from '../../../src/uplink/profiles/aws-iot.js';
import {
  createProfile,
  type CloudProfile,
  type Downlink,
  type WirePublish,
} from '../../../src/uplink/profiles/index.js';
import { jsonParts } from '../../../src/uplink/profiles/json.js';
import { sasExpiry, sasRenewInS, sasToken } from '../../../src/uplink/profiles/sas.js';
import { referenceSasToken } from '../../integration/profile-rig.js';

const tahu = (
  createRequire(import.meta.url)('sparkplug-payload') as {
    get(ns: string): {
      decodePayload(b: Uint8Array): { seq?: { toNumber(): number }; metrics?: { name?: string; value?: unknown }[] };
      encodePayload(p: object): Uint8Array;
    };
  }
).get('spBv1.0');

const KEY = Buffer.alloc(32, 7).toString('base64');
const r = (deviceId: string, ts: number, values: Reading['values']): Reading => ({
  deviceId,
  ts,
  values,
  quality: 'good',
  source: 'mqtt',
});

function profile(uplinkYaml: string, now?: () => number): CloudProfile {
  const c = parseConfig(`version: 1\ngateway: { id: gw-1 }\nuplink: ${uplinkYaml}\n`);
  return createProfile(c.uplink, 'gw-1', now);
}

function readingsMsg(id: string, rs: Reading[]) {
  return {
    id,
    topic: `sensors/${rs[0]!.deviceId}/data`,
    payload: encodeBatch(rs),
    contentType: 'x',
    readings: rs.length,
  };
}

const noLink = { publish: (_w: WirePublish) => undefined };

test('config: uplink.profile defaults to mqtt (today’s layout); unknown profiles are refused; the Azure device key is a secret', () => {
  const c = parseConfig('version: 1\n');
  assert.equal(c.uplink.profile, 'mqtt');
  assert.throws(() => parseConfig('version: 1\nuplink: { profile: gcp }\n'), /uplink\.profile/);
  const az = parseConfig(`version: 1\nuplink: { profile: azure-iot-hub, azure: { hub: h, device_key: "${KEY}" } }\n`);
  assert.equal(
    (redactSecrets(az) as { uplink: { azure: { device_key: string } } }).uplink.azure.device_key,
    '[redacted]',
  );
  const p = profile('{}');
  assert.equal(p.name, 'mqtt');
  const [w] = p.encode({
    id: 'm1',
    topic: 'alerts/d1',
    payload: Buffer.from('{}'),
    contentType: 'application/json',
    readings: 0,
  });
  assert.equal(w!.topic, 'edge/gw-1/alerts/d1');
  assert.deepEqual(w!.properties, { userProperties: { 'msg-id': 'm1' }, contentType: 'application/json' });
});

test('profiles refuse a config they cannot work with, naming the key (EGW_UPLINK_PROFILE)', () => {
  const code = { code: 'EGW_UPLINK_PROFILE' };
  assert.throws(() => profile('{ profile: aws-iot, url: "mqtt://x:1883", cert_file: a, key_file: b }'), code);
  assert.throws(() => profile('{ profile: aws-iot, url: "mqtts://x:8883" }'), /cert_file/);
  assert.throws(
    () => profile('{ profile: aws-iot, url: "mqtts://x:8883", cert_file: a, key_file: b, topic_prefix: a/b/c/d/e/f }'),
    /topic limits/,
  );
  assert.throws(() => profile('{ profile: azure-iot-hub, url: "mqtts://h:8883", azure: { hub: h } }'), /device_key/);
  assert.throws(
    () => profile(`{ profile: azure-iot-hub, url: "mqtts://h:8883", azure: { device_key: "${KEY}" } }`),
    /hub/,
  );
  assert.throws(
    () => profile('{ profile: azure-iot-hub, url: "mqtts://h:8883", azure: { hub: h, device_key: "c2hvcnQ=" } }'),
    /16 bytes/,
  );
});

test('check-config reports what a profile would refuse, with the key and line', () => {
  assert.throws(
    () =>
      parseConfig('version: 1\nuplink: { profile: aws-iot, url: "mqtts://x:8883" }\n', 'cfg', {}, checkAgainstModules),
    /uplink\.profile: .*cert_file.*\(line 2\)/s,
  );
  assert.doesNotThrow(() =>
    parseConfig('version: 1\nuplink: { enabled: false, profile: aws-iot }\n', 'cfg', {}, checkAgainstModules),
  );
});

test('SAS token: the gateway’s matches the test’s own RFC 2104 HMAC of Azure’s documented string to sign', () => {
  for (const se of [1700003600, 1893456000]) {
    assert.equal(
      sasToken('hub.azure-devices.net/devices/dev-1', KEY, se),
      referenceSasToken('hub.azure-devices.net', 'dev-1', KEY, se),
    );
  }
  const t = sasToken('h/devices/d', KEY, 10);
  assert.match(t, /^SharedAccessSignature sr=h%2Fdevices%2Fd&sig=[A-Za-z0-9%]+&se=10$/);
  assert.doesNotMatch(/&sig=([^&]*)&/.exec(t)![1]!, /[+/=]/, 'signature URL-encoded');
  // Expiry on a grid: between ttl and 2·ttl ahead; renewal at the next boundary.
  assert.equal(sasExpiry(3599, 3600), 7200);
  assert.equal(sasExpiry(3600, 3600), 10800);
  assert.equal(sasRenewInS(3599, 3600), 1);
  assert.equal(sasRenewInS(3600, 3600), 3600);
});

test('azure-iot-hub connect options: MQTT 3.1.1, client id = device id, documented user name, fresh token per attempt', () => {
  let now = 1_000_000_000_000;
  const p = profile(
    `{ profile: azure-iot-hub, url: "mqtts://h:8883", azure: { hub: h.azure-devices.net, device_id: dev-1, device_key: "${KEY}", sas_ttl_s: 60 } }`,
    () => now,
  );
  const o = p.connectOptions({ protocolVersion: 5, properties: { sessionExpiryInterval: 5 } });
  assert.equal(o.protocolVersion, 4);
  assert.equal(o.properties, undefined, 'no MQTT 5 properties on a 3.1.1 CONNECT');
  assert.equal(o.clientId, 'dev-1');
  assert.equal(o.username, 'h.azure-devices.net/dev-1/?api-version=2021-04-12');
  const se = sasExpiry(now / 1000, 60);
  assert.equal(o.password, referenceSasToken('h.azure-devices.net', 'dev-1', KEY, se));
  const renew = p.renewAfterMs()!;
  assert.ok(renew >= sasRenewInS(now / 1000, 60) * 1000 && renew <= (sasRenewInS(now / 1000, 60) + 15) * 1000);
  now += 120_000;
  assert.notEqual(p.connectOptions({}).password, o.password, 'a later attempt signs a later expiry');
});

test('azure-iot-hub downlink: hostile topics and payloads are dropped at the boundary', () => {
  const p = profile(
    `{ profile: azure-iot-hub, url: "mqtts://h:8883", azure: { hub: h, device_id: dev-1, device_key: "${KEY}" } }`,
  );
  const c2d = 'devices/dev-1/messages/devicebound/';
  const body = Buffer.from('{}');
  assert.deepEqual(
    p.inbound(`${c2d}device=d%2F1`, body, noLink),
    { kind: 'bad-device-id', raw: 'd/1', payload: body, props: {} },
    'a device id outside the charset: flagged, the command pipeline refuses it with a reason',
  );
  assert.deepEqual(
    p.inbound(`${c2d}device=%E0%A4%A&x=1`, body, noLink)?.kind,
    'gateway-command',
    'a bad escape is skipped',
  );
  assert.deepEqual(p.inbound(`${c2d}device=ok-1&%ZZ=1`, body, noLink), {
    kind: 'device-command',
    deviceId: 'ok-1',
    payload: body,
    props: {},
  });
  // C2D system properties stand in for MQTT 5's: $.mid → the command id, $.cid → correlation data.
  assert.deepEqual(p.inbound(`${c2d}device=ok-1&%24.mid=m-7&%24.cid=c-9`, body, noLink)?.props, {
    correlationData: Buffer.from('c-9'),
    userProperties: { 'msg-id': 'm-7' },
  });
  const reply = p.commandResult('devices/ok-1/command_result', '{"ok":true}', {
    msgId: 'r-1',
    correlationData: Buffer.from('c-9'),
  });
  assert.ok(reply.topic.startsWith('devices/dev-1/messages/events/$.mid=r-1&$.cid=c-9&$.ct=application%2Fjson'));
  assert.ok(reply.topic.endsWith('topic=devices%2Fok-1%2Fcommand_result'));
  assert.equal(
    p.inbound('devices/other/messages/devicebound/device=d1', body, noLink),
    undefined,
    'another device’s topic',
  );
  // Twin: answers to a request we did not make, non-JSON, arrays and oversized documents change nothing.
  const published: WirePublish[] = [];
  p.onConnected({ publish: (w) => published.push(w) });
  const rid = /\$rid=(\d+)/.exec(published[0]!.topic)![1]!;
  assert.equal(p.inbound('$iothub/twin/res/200/?$rid=999', Buffer.from('{"desired":{}}'), noLink), undefined);
  assert.equal(p.inbound(`$iothub/twin/res/200/?$rid=${rid}`, Buffer.from('[1,2]'), noLink), undefined);
  const big = Buffer.from(JSON.stringify({ desired: { x: 'a'.repeat(70000) } }));
  assert.equal(p.inbound(`$iothub/twin/PATCH/properties/desired/?$version=9`, big, noLink), undefined);
  assert.equal(p.inbound(`$iothub/twin/PATCH/properties/desired/?$version=9`, Buffer.from('{"a":'), noLink), undefined);
  const d = p.inbound(
    `$iothub/twin/PATCH/properties/desired/?$version=9`,
    Buffer.from('{"a":{"b":1,"c":2},"$version":9}'),
    noLink,
  );
  const e = p.inbound(
    `$iothub/twin/PATCH/properties/desired/?$version=10`,
    Buffer.from('{"a":{"c":null},"$version":10}'),
    noLink,
  );
  const doc = (x: Downlink | undefined) =>
    x?.kind === 'config-desired' ? [JSON.parse(x.payload.toString()) as unknown, x.version] : x;
  assert.deepEqual(doc(d), [{ a: { b: 1, c: 2 } }, 9]);
  assert.deepEqual(doc(e), [{ a: { b: 1 } }, 10], 'null removes a property (twin PATCH semantics)');
  // Reported state: a PATCH with a new request id each time, QoS 1, never retained (IoT Hub has no retain).
  const s1 = p.reportState({ v: 1 });
  const s2 = p.reportState({ v: 2 });
  assert.match(s1.topic, /^\$iothub\/twin\/PATCH\/properties\/reported\/\?\$rid=\d+$/);
  assert.notEqual(s1.topic, s2.topic);
  assert.equal(s1.retain, undefined);
});

test('JSON parts: a batch over the payload limit is cut in halves with stable part ids; one oversize reading is refused', () => {
  const rs = Array.from({ length: 100 }, (_, i) => r('d1', 1700000000000 + i, { seq: i, label: 'x'.repeat(40) }));
  const whole = jsonParts('m', 'sensors/d1/data', rs, 1_000_000);
  assert.equal(whole.length, 1);
  const parts = jsonParts('m', 'sensors/d1/data', rs, 2000);
  assert.ok(parts.length > 1);
  assert.ok(parts.every((p) => p.body.length <= 2000));
  assert.deepEqual(
    parts.flatMap((p) =>
      (JSON.parse(p.body.toString()) as { readings: { values: { seq: number } }[] }).readings.map((x) => x.values.seq),
    ),
    rs.map((_, i) => i),
  );
  assert.deepEqual(
    parts.map((p) => p.id),
    jsonParts('m', 'sensors/d1/data', rs, 2000).map((p) => p.id),
    'same cut every time',
  );
  assert.equal(new Set(parts.map((p) => p.id)).size, parts.length);
  assert.throws(() => jsonParts('m', 't', [rs[0]!], 50), { code: 'EGW_UPLINK_PROFILE' });
});

test('aws-iot: batches split under 128 KB, an oversize non-reading message is refused, topics checked', () => {
  const p = profile(
    '{ profile: aws-iot, url: "mqtts://x:8883", cert_file: a, key_file: b, aws: { thing_name: t1 }, downlink: { enabled: true } }',
  );
  assert.equal(p.connectOptions({}).clientId, 't1');
  assert.equal(p.connectOptions({}).clean, false, 'the downlink keeps its session');
  assert.equal(p.maxInflight, 100);
  const rs = Array.from({ length: 3000 }, (_, i) => r('d1', 1700000000000 + i, { seq: i, v: i / 3 }));
  const ws = p.encode(readingsMsg('m1', rs));
  assert.ok(
    ws.length > 1 && ws.every((w) => w.payload.length <= AWS_MAX_PAYLOAD && w.topic === 'edge/t1/sensors/d1/data'),
  );
  assert.throws(
    () =>
      p.encode({
        id: 'm2',
        topic: 'inspection/c1/result',
        payload: Buffer.alloc(AWS_MAX_PAYLOAD + 1),
        contentType: 'application/json',
        readings: 0,
      }),
    { code: 'EGW_UPLINK_PROFILE' },
  );
  assert.deepEqual(p.subscriptions(), ['edge/t1/commands/+', 'edge/t1/gateway/commands', 'edge/t1/config/desired']);
  assert.equal(p.inbound('edge/t1/commands/..%2F', Buffer.alloc(0), noLink)?.kind, 'bad-device-id');
  assert.equal(p.inbound('edge/t1/elsewhere', Buffer.alloc(0), noLink), undefined);
  assert.throws(() => p.commandResult(`edge/t1/${'x/'.repeat(8)}r`, '{}', {}), { code: 'EGW_UPLINK_PROFILE' });
});

test('sparkplug-b: seq wraps 255 → 0, a type change or a new metric re-births the device, DDEATH only for a born device, hostile NCMD/DCMD dropped', () => {
  let now = 1700000000000;
  const p = profile('{ profile: sparkplug-b, sparkplug: { group_id: g } }', () => now++);
  const will = p.connectOptions({}).will!;
  assert.equal(will.topic, 'spBv1.0/g/NDEATH/gw-1');
  const births: WirePublish[] = [];
  p.onConnected({ publish: (w) => births.push(w) });
  assert.equal(births.length, 1);
  const seqOf = (w: WirePublish) => tahu.decodePayload(w.payload).seq!.toNumber();
  assert.equal(seqOf(births[0]!), 0);
  assert.equal(
    p.encode({
      id: 'x',
      topic: 'devices/d1/status',
      payload: Buffer.from('{"online":false}'),
      contentType: 'application/json',
      readings: 0,
    }).length,
    0,
  );
  const w1 = p.encode(readingsMsg('a', [r('d1', now, { t: 1 })]));
  assert.deepEqual(
    w1.map((w) => w.topic),
    ['spBv1.0/g/DBIRTH/gw-1/d1', 'spBv1.0/g/DDATA/gw-1/d1'],
  );
  assert.deepEqual(
    w1.map((w) => seqOf(w)),
    [1, 2],
  );
  assert.equal(p.encode(readingsMsg('b', [r('d1', now, { t: 2 })])).length, 1, 'known metrics: DDATA only');
  assert.equal(p.encode(readingsMsg('c', [r('d1', now, { t: 'text' })])).length, 2, 'type change: DBIRTH again');
  assert.equal(p.encode(readingsMsg('d', [r('d1', now, { t: 'x', u: null })])).length, 2, 'new metric: DBIRTH again');
  const seqs: number[] = [];
  for (let i = 0; i < 300; i++) seqs.push(seqOf(p.encode(readingsMsg(`e${i}`, [r('d1', now, { t: 'y', u: 1 })]))[0]!));
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], (seqs[i - 1]! + 1) % 256);
  const dd = p.encode({
    id: 'y',
    topic: 'devices/d1/status',
    payload: Buffer.from('{"online":false}'),
    contentType: 'application/json',
    readings: 0,
  });
  assert.deepEqual(
    dd.map((w) => w.topic),
    ['spBv1.0/g/DDEATH/gw-1/d1'],
  );
  // Hostile input.
  assert.equal(p.inbound('spBv1.0/g/NCMD/gw-1', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), noLink), undefined);
  assert.equal(
    p.inbound('spBv1.0/g/DCMD/gw-1/..%2F', Buffer.from(tahu.encodePayload({ metrics: [] })), noLink)?.kind,
    'bad-device-id',
  );
  const rebirths: WirePublish[] = [];
  const notRebirth = p.inbound(
    'spBv1.0/g/NCMD/gw-1',
    Buffer.from(tahu.encodePayload({ metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: false }] })),
    { publish: (w) => rebirths.push(w) },
  );
  assert.equal(rebirths.length, 0, 'Rebirth = false is no rebirth');
  assert.equal(notRebirth?.kind, 'gateway-command');
  p.inbound(
    'spBv1.0/g/NCMD/gw-1',
    Buffer.from(tahu.encodePayload({ metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] })),
    { publish: (w) => rebirths.push(w) },
  );
  assert.deepEqual(
    rebirths.map((w) => w.topic),
    ['spBv1.0/g/NBIRTH/gw-1', 'spBv1.0/g/DBIRTH/gw-1/d1'],
  );
  const bd = (w: WirePublish) =>
    tahu.decodePayload(w.payload).metrics!.find((m) => m.name === 'bdSeq')!.value as { toNumber(): number };
  assert.equal(bd(rebirths[0]!).toNumber(), bd({ topic: '', qos: 0, payload: will.payload as Buffer }).toNumber());
  // bdSeq: +1 per CONNECT, 255 wraps to 0.
  for (let i = 0; i < 255; i++) p.connectOptions({});
  assert.equal(bd({ topic: '', qos: 0, payload: p.connectOptions({}).will!.payload as Buffer }).toNumber(), 0);
});

test('mqtt profile: the TopicLayout and the PayloadFormat per topic; a persistent session and subscriptions only with the downlink on; replies with MQTT 5 properties', () => {
  const off = profile('{ url: "mqtt://h:1883" }');
  assert.equal(off.connectOptions({ clean: true }).clean, true, 'send-only: clean start');
  assert.deepEqual(off.subscriptions(), []);
  const rs = [r('d1', 1700000000000, { t: 21.5 }), r('d1', 1700000001000, { t: 21.6 })];
  const codec = off.encode(readingsMsg('m1', rs));
  assert.equal(codec[0]!.topic, 'edge/gw-1/sensors/d1/data');
  assert.equal(codec[0]!.payload[0], 0xc1, 'the codec by default');

  const on = profile(
    '{ url: "mqtt://h:1883", payload_format_rules: [{ topic: \'sensors/#\', format: json }], downlink: { enabled: true, session_expiry_s: 123 } }',
  );
  const o = on.connectOptions({ clean: true, properties: { receiveMaximum: 10 } });
  assert.equal(o.clean, false);
  assert.deepEqual(o.properties, { receiveMaximum: 10, sessionExpiryInterval: 123 });
  assert.deepEqual(on.subscriptions(), [
    'edge/gw-1/commands/+',
    'edge/gw-1/gateway/commands',
    'edge/gw-1/config/desired',
  ]);
  const [json] = on.encode(readingsMsg('m2', rs));
  assert.equal(json!.properties?.contentType, 'application/json');
  assert.deepEqual(JSON.parse(json!.payload.toString()), {
    id: 'm2',
    topic: 'sensors/d1/data',
    readings: [
      { deviceId: 'd1', ts: 1700000000000, values: { t: 21.5 }, quality: 'good' },
      { deviceId: 'd1', ts: 1700000001000, values: { t: 21.6 }, quality: 'good' },
    ],
  });
  // Down: the MQTT 5 properties are added by the uplink; the profile names the kind.
  assert.deepEqual(on.inbound('edge/gw-1/commands/d%201', Buffer.from('{}'), noLink), {
    kind: 'bad-device-id',
    raw: 'd%201',
    payload: Buffer.from('{}'),
  });
  assert.equal(on.inbound('edge/gw-1/state', Buffer.from('{}'), noLink), undefined, 'our own state is not a command');
  // Up: a result with its correlation data and a stable msg-id; the state retained.
  const res = on.commandResult(on.replies.deviceCommandResult('d1'), '{"ok":true}', {
    correlationData: Buffer.from([1, 2]),
    msgId: 'r-1',
  });
  assert.equal(res.topic, 'edge/gw-1/devices/d1/command_result');
  assert.deepEqual(res.properties, {
    contentType: 'application/json',
    correlationData: Buffer.from([1, 2]),
    userProperties: { 'msg-id': 'r-1' },
  });
  const st = on.reportState({ a: 1 }, 's-1');
  assert.equal(st.topic, 'edge/gw-1/state');
  assert.equal(st.retain, true);
  assert.deepEqual(st.properties?.userProperties, { 'msg-id': 's-1' });
  assert.equal(on.replies.configReported(), 'edge/gw-1/config/reported');
});

test('sparkplug-b: a DCMD carries a stable command id; results ride as NDATA Gateway/Message; the session stays clean with the downlink on', () => {
  const p = profile(
    '{ profile: sparkplug-b, url: "mqtt://h:1883", sparkplug: { group_id: g }, downlink: { enabled: true } }',
  );
  assert.equal(p.connectOptions({}).clean, true, 'Sparkplug 3.0: Clean Start, Session Expiry 0');
  const dcmd = Buffer.from(
    tahu.encodePayload({ timestamp: 5, metrics: [{ name: 'on', type: 'Boolean', value: true }] }),
  );
  const a = p.inbound('spBv1.0/g/DCMD/gw-1/lamp', dcmd, noLink);
  const b = p.inbound('spBv1.0/g/DCMD/gw-1/lamp', dcmd, noLink);
  assert.equal(a?.kind, 'device-command');
  const id = a?.props?.userProperties?.['msg-id'];
  assert.match(String(id), /^spb-5-[0-9a-f]{16}$/);
  assert.equal(b?.props?.userProperties?.['msg-id'], id, 'a redelivery has the same id');
  const w = p.commandResult(p.replies.deviceCommandResult('lamp'), '{"ok":true}', { msgId: 'r-9' });
  assert.equal(w.topic, 'spBv1.0/g/NDATA/gw-1');
  const m = tahu.decodePayload(w.payload).metrics![0]!;
  assert.deepEqual(JSON.parse(m.value as string), {
    topic: 'devices/lamp/command_result',
    id: 'r-9',
    payload: '{"ok":true}',
  });
});

test('sparkplug-b: bdSeq continues across a restart (kept in the data dir), so a late NDEATH of the killed process never matches the new NBIRTH', () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-bdseq-'));
  try {
    const c = parseConfig(
      'version: 1\ngateway: { id: gw-1 }\nuplink: { profile: sparkplug-b, sparkplug: { group_id: g } }\n',
    );
    const bdOf = (p: CloudProfile) =>
      (
        tahu.decodePayload(p.connectOptions({}).will!.payload as Buffer).metrics!.find((m) => m.name === 'bdSeq')!
          .value as { toNumber(): number }
      ).toNumber();
    const first = createProfile(c.uplink, 'gw-1', undefined, dir);
    assert.equal(bdOf(first), 0, 'a node that never connected starts at 0');
    assert.equal(bdOf(first), 1);
    // kill -9, restart: the next CONNECT carries 2, not 0 again.
    const second = createProfile(c.uplink, 'gw-1', undefined, dir);
    assert.equal(bdOf(second), 2);
    // 255 wraps to 0 across restarts too; a damaged record starts over at 0 rather than failing.
    writeFileSync(join(dir, 'sparkplug-bdseq'), '255\n');
    assert.equal(bdOf(createProfile(c.uplink, 'gw-1', undefined, dir)), 0);
    writeFileSync(join(dir, 'sparkplug-bdseq'), 'garbage');
    assert.equal(bdOf(createProfile(c.uplink, 'gw-1', undefined, dir)), 0);
    assert.equal(readFileSync(join(dir, 'sparkplug-bdseq'), 'utf8'), '0\n');
    // Without a data dir (check-config) nothing is written.
    assert.equal(bdOf(createProfile(c.uplink, 'gw-1')), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
