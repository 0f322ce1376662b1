import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { CloudSide, ProfileCloud } from './profile-cloud.js';
import { reading, referenceSasToken, startUplink, until } from './profile-rig.js';
import { makePki } from './tls-certs.js';

// Tahu's own Sparkplug B decoder (generated from sparkplug_b.proto by Eclipse Tahu): independent
// of the gateway's encoder (protobufjs 8 with src/uplink/profiles/sparkplug-schema.ts).
interface TahuMetric {
  name?: string;
  alias?: { toNumber(): number } | number;
  type?: string;
  value?: unknown;
  isNull?: boolean;
}
interface TahuPayload {
  seq?: { toNumber(): number } | number;
  metrics?: TahuMetric[];
}
const tahu = (
  createRequire(import.meta.url)('sparkplug-payload') as {
    get(ns: string): { decodePayload(b: Uint8Array): TahuPayload; encodePayload(p: object): Uint8Array };
  }
).get('spBv1.0');
const num = (v: { toNumber(): number } | number | undefined): number | undefined =>
  v === undefined ? undefined : typeof v === 'number' ? v : v.toNumber();

test('aws-iot: mTLS with the thing certificate, client id = thing name, JSON readings on the thing topics, a command reaches down', async (t) => {
  const pki = makePki();
  t.after(() => pki.cleanup());
  // AWS IoT authorises by certificate; the IoT policy pins the thing's topics. mosquitto: the
  // certificate CN is the user name, the ACL lets it use edge/device-42/# only.
  const cloud = await ProfileCloud.start({
    pki,
    certificateAuth: true,
    acl: ['user device-42', 'topic readwrite edge/device-42/#'],
  });
  t.after(() => cloud.close());
  const side = await CloudSide.connect(cloud.testUrl, ['edge/#']);
  t.after(() => side.close());
  const rig = await startUplink(
    `{ profile: aws-iot, url: "${cloud.url}", ca_file: "${pki.ca}", cert_file: "${pki.clientCert}", key_file: "${pki.clientKey}", aws: { thing_name: device-42 }, downlink: { enabled: true } }`,
    'gw-aws',
  );
  t.after(() => rig.close());
  await until(() => rig.uplink.isOnline, 10000, 'aws uplink online');
  assert.ok(
    cloud.log.some((l) => / as device-42 /.test(l)),
    `client id is the thing name: ${cloud.log.join('\n')}`,
  );

  await rig.outbox.enqueueReadings(
    [reading('d1', 1700000000000, { t: 21.5, ok: true }), reading('d1', 1700000001000, { t: 21.75, ok: false })],
    'sensors/d1/data',
  );
  await rig.outbox.enqueue({ topic: 'alerts/d1', payload: Buffer.from('{"level":"critical"}') });
  const data = await side.waitFor(
    () => side.got.find((g) => g.topic === 'edge/device-42/sensors/d1/data'),
    10000,
    'readings',
  );
  const doc = JSON.parse(data.payload.toString()) as {
    id: string;
    topic: string;
    readings: { deviceId: string; ts: number; values: object }[];
  };
  assert.equal(doc.topic, 'sensors/d1/data');
  assert.equal(doc.id, data.msgId, 'the body carries the message id too (rules cannot read user properties)');
  assert.deepEqual(
    doc.readings.map((r) => [r.deviceId, r.ts, r.values]),
    [
      ['d1', 1700000000000, { t: 21.5, ok: true }],
      ['d1', 1700000001000, { t: 21.75, ok: false }],
    ],
  );
  const alert = await side.waitFor(() => side.got.find((g) => g.topic === 'edge/device-42/alerts/d1'), 10000, 'alert');
  assert.equal(alert.payload.toString(), '{"level":"critical"}');

  // Over AWS IoT's 128 KB: refused by the profile, counted, and it does not hold the queue back.
  await rig.outbox.enqueue({ topic: 'alerts/big', payload: Buffer.alloc(130 * 1024, 0x20) });
  await rig.outbox.enqueue({ topic: 'alerts/after', payload: Buffer.from('{}') });
  await side.waitFor(
    () => side.got.find((g) => g.topic === 'edge/device-42/alerts/after'),
    10000,
    'alert after the oversize one',
  );
  assert.equal(rig.uplink.counters.unsendable, 1);
  assert.ok(!side.got.some((g) => g.topic === 'edge/device-42/alerts/big'));

  await side.client.publishAsync('edge/device-42/commands/d1', '{"set":{"valve":1}}', { qos: 1 });
  await side.client.publishAsync('edge/device-42/commands/bad%20id', '{}', { qos: 1 });
  await until(() => rig.downlinks.length >= 2, 10000, 'command down');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(
    rig.downlinks.map((d) =>
      d.kind === 'device-command'
        ? [d.kind, d.deviceId, d.payload.toString()]
        : d.kind === 'bad-device-id'
          ? [d.kind, d.raw]
          : [d.kind],
    ),
    [
      ['device-command', 'd1', '{"set":{"valve":1}}'],
      ['bad-device-id', 'bad%20id'],
    ],
    'a device id outside the charset is flagged at the boundary (the command pipeline refuses it with a reason)',
  );
});

test('aws-iot: a broker that does not trust the thing certificate keeps the data queued', async (t) => {
  const pki = makePki();
  t.after(() => pki.cleanup());
  const cloud = await ProfileCloud.start({
    pki,
    certificateAuth: true,
    acl: ['user device-42', 'topic readwrite edge/device-42/#'],
  });
  t.after(() => cloud.close());
  const rig = await startUplink(
    `{ profile: aws-iot, url: "${cloud.url}", ca_file: "${pki.ca}", cert_file: "${pki.otherClientCert}", key_file: "${pki.otherClientKey}", aws: { thing_name: device-42 }, reconnect: { min_ms: 100, max_ms: 200 } }`,
    'gw-aws',
  );
  t.after(() => rig.close());
  await rig.outbox.enqueue({ topic: 'alerts/d1', payload: Buffer.from('{}') });
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(rig.uplink.isOnline, false);
  assert.equal(
    rig.outbox.classStats().reduce((a, c) => a + c.depth, 0),
    1,
  );
});

test('aws-iot: the bandwidth cap holds in wire bytes (JSON is several times the codec the outbox holds)', async (t) => {
  const pki = makePki();
  t.after(() => pki.cleanup());
  const cloud = await ProfileCloud.start({ pki, certificateAuth: true });
  t.after(() => cloud.close());
  const side = await CloudSide.connect(cloud.testUrl, ['edge/#']);
  t.after(() => side.close());
  const capBps = 5000;
  const rig = await startUplink(
    `{ profile: aws-iot, url: "${cloud.url}", ca_file: "${pki.ca}", cert_file: "${pki.clientCert}", key_file: "${pki.clientKey}", aws: { thing_name: device-42 }, downlink: { enabled: true } }`,
    'gw-aws',
    undefined,
    `{ outbox: { commit_wait_ms: 1 }, classes: { MEDIUM: { batch_window_ms: 0 } }, bandwidth: { limit_kbps: ${(capBps * 8) / 1000}, burst_bytes: 4096 } }`,
  );
  t.after(() => rig.close());
  await until(() => rig.uplink.isOnline, 10000, 'online');
  for (let m = 0; m < 12; m++) {
    await rig.outbox.enqueueReadings(
      Array.from({ length: 10 }, (_, i) =>
        reading('d1', 1700000000000 + m * 10 + i, { seq: m * 10 + i, t: 20 + i / 7 }),
      ),
      'sensors/d1/data',
    );
  }
  const count = () =>
    side.got
      .filter((g) => g.topic.endsWith('/data'))
      .reduce((a, g) => a + (JSON.parse(g.payload.toString()) as { readings: unknown[] }).readings.length, 0);
  await until(() => count() >= 120, 30000, 'all readings');
  const data = side.got.filter((g) => g.topic.endsWith('/data'));
  // PUBLISH bytes as the bucket counts them: payload, topic, properties (~40 B), link overhead (60 B).
  const bytes = data.map((g) => g.payload.length + g.topic.length + 40 + 60);
  const total = bytes.reduce((a, b) => a + b, 0);
  const seconds = (data.at(-1)!.at - data[0]!.at) / 1000;
  // The first bucketful (4096 B) and the first message may go at once; the rest at most at the cap.
  const rate = (total - 4096 - bytes[0]!) / seconds;
  t.diagnostic(`${data.length} messages, ${total} B in ${seconds.toFixed(2)} s: ${rate.toFixed(0)} B/s, cap ${capBps}`);
  assert.ok(total > 10000, 'JSON makes this several bucketfuls');
  assert.ok(rate <= capBps * 1.15, `${rate.toFixed(0)} B/s over the ${capBps} B/s cap`);
});

const HUB = 'egw-test.azure-devices.net';
const API = '2021-04-12';

test('azure-iot-hub: SAS token the hub can check, telemetry with properties, c2d to a device, twin desired and reported', async (t) => {
  const pki = makePki();
  t.after(() => pki.cleanup());
  const key = randomBytes(32).toString('base64');
  const dev = 'gw-az';
  const username = `${HUB}/${dev}/?api-version=${API}`;
  // The gateway's clock sits 5 s before a 10 s period boundary: the token of this period, then a renewal.
  const ttl = 10;
  const offset = Math.ceil(Date.now() / 10000) * 10000 + 5000 - Date.now() + 10000;
  const now = () => Date.now() + offset;
  const period = () => Math.floor(now() / 1000 / ttl);
  const first = period();
  const cloud = await ProfileCloud.start({
    pki,
    password: { username, password: referenceSasToken(HUB, dev, key, (first + 2) * ttl) },
    acl: [
      `user ${username}`,
      `topic write devices/${dev}/messages/events/#`,
      `topic read devices/${dev}/messages/devicebound/#`,
      'topic write $iothub/twin/GET/#',
      'topic write $iothub/twin/PATCH/properties/reported/#',
      'topic read $iothub/twin/res/#',
      'topic read $iothub/twin/PATCH/properties/desired/#',
    ],
  });
  t.after(() => cloud.close());
  const side = await CloudSide.connect(cloud.testUrl, [
    `devices/${dev}/messages/events/#`,
    '$iothub/twin/GET/#',
    '$iothub/twin/PATCH/properties/reported/#',
  ]);
  t.after(() => side.close());
  const rig = await startUplink(
    `{ profile: azure-iot-hub, url: "${cloud.url}", ca_file: "${pki.ca}", azure: { hub: ${HUB}, device_id: ${dev}, device_key: "${key}", sas_ttl_s: ${ttl} } }`,
    'gw-unused',
    now,
  );
  t.after(() => rig.close());
  await until(() => rig.uplink.isOnline, 10000, 'azure uplink online');
  assert.equal(period(), first, 'connected within the first period');

  // Twin: the gateway asks for the whole twin; the test answers as the hub.
  const get = await side.waitFor(() => side.got.find((g) => g.topic.startsWith('$iothub/twin/GET/')), 5000, 'twin GET');
  const rid = /\$rid=([^&]+)/.exec(get.topic)![1]!;
  await side.client.publishAsync(
    `$iothub/twin/res/200/?$rid=${rid}`,
    JSON.stringify({ desired: { sampling_ms: 1000, $version: 3 }, reported: { $version: 1 } }),
    { qos: 0 },
  );
  await side.client.publishAsync(
    '$iothub/twin/PATCH/properties/desired/?$version=4',
    JSON.stringify({ alarm: { high: 80 }, $version: 4 }),
    { qos: 0 },
  );
  await side.client.publishAsync('$iothub/twin/PATCH/properties/desired/?$version=2', '{"stale":true,"$version":2}', {
    qos: 0,
  });
  await side.client.publishAsync('$iothub/twin/PATCH/properties/desired/?$version=5', 'not json', { qos: 0 });
  await until(() => rig.downlinks.filter((d) => d.kind === 'config-desired').length >= 2, 5000, 'desired');
  await new Promise((r) => setTimeout(r, 200));
  const desired = rig.downlinks.filter((d) => d.kind === 'config-desired');
  assert.deepEqual(
    desired.map((d) => [JSON.parse(d.payload.toString()) as unknown, d.version]),
    [
      [{ sampling_ms: 1000 }, 3],
      [{ sampling_ms: 1000, alarm: { high: 80 } }, 4],
    ],
    'patches merge into the whole desired document; stale and malformed patches change nothing',
  );
  assert.ok(rig.uplink.reportState({ config_version: 4 }));
  const rep = await side.waitFor(
    () => side.got.find((g) => g.topic.startsWith('$iothub/twin/PATCH/properties/reported/?$rid=')),
    5000,
    'reported PATCH',
  );
  assert.deepEqual(JSON.parse(rep.payload.toString()), { config_version: 4 });

  // Telemetry: JSON body, system properties ($.mid, $.ct, $.ce) and the local topic url-encoded in the topic.
  await rig.outbox.enqueueReadings([reading('d1', 1700000000000, { t: 20 })], 'sensors/d1/data');
  const ev = await side.waitFor(
    () => side.got.find((g) => g.topic.includes('topic=sensors%2Fd1%2Fdata')),
    10000,
    'telemetry',
  );
  const bag = new URLSearchParams(ev.topic.slice(`devices/${dev}/messages/events/`.length));
  assert.equal(bag.get('$.ct'), 'application/json');
  assert.equal(bag.get('$.ce'), 'utf-8');
  const body = JSON.parse(ev.payload.toString()) as { id: string; readings: { values: object }[] };
  assert.equal(body.id, bag.get('$.mid'));
  assert.deepEqual(body.readings[0]!.values, { t: 20 });

  // Cloud-to-device: the hub appends its property bag; `device` names the local device.
  await side.client.publishAsync(
    `devices/${dev}/messages/devicebound/%24.to=%2Fdevices%2F${dev}%2Fmessages%2FdeviceBound&device=d1`,
    '{"set":{"fan":true}}',
    { qos: 1 },
  );
  await until(() => rig.downlinks.some((d) => d.kind === 'device-command'), 5000, 'c2d');
  const cmd = rig.downlinks.find((d) => d.kind === 'device-command')!;
  assert.ok(
    cmd.kind === 'device-command' && cmd.deviceId === 'd1' && cmd.payload.toString() === '{"set":{"fan":true}}',
  );

  // Renewal: once the next period starts the hub accepts only its token (mosquitto's reload also
  // drops a connection whose credentials no longer pass); the gateway must come back with it.
  await until(() => period() > first, 10000, 'next period');
  cloud.setPassword(username, referenceSasToken(HUB, dev, key, (first + 3) * ttl));
  await until(
    () => cloud.log.filter((l) => new RegExp(`connected from .* as ${dev} `).test(l)).length >= 2,
    10000,
    'reconnect with a fresh token',
  );
  await until(() => rig.uplink.isOnline, 10000, 'online again');
  await rig.outbox.enqueueReadings([reading('d1', 1700000002000, { t: 22 })], 'sensors/d1/data');
  await side.waitFor(
    () => side.got.find((g) => g.topic.includes('topic=sensors') && g.payload.includes('1700000002000')),
    10000,
    'telemetry after renewal',
  );
});

test('azure-iot-hub: a token the hub does not accept keeps the gateway offline and the data queued', async (t) => {
  const pki = makePki();
  t.after(() => pki.cleanup());
  const key = randomBytes(32).toString('base64');
  const username = `${HUB}/gw-az/?api-version=${API}`;
  const cloud = await ProfileCloud.start({
    pki,
    password: { username, password: 'SharedAccessSignature sr=x&sig=y&se=1' },
  });
  t.after(() => cloud.close());
  const rig = await startUplink(
    `{ profile: azure-iot-hub, url: "${cloud.url}", ca_file: "${pki.ca}", azure: { hub: ${HUB}, device_id: gw-az, device_key: "${key}" }, reconnect: { min_ms: 100, max_ms: 200 } }`,
    'gw-az',
  );
  t.after(() => rig.close());
  await rig.outbox.enqueue({ topic: 'alerts/d1', payload: Buffer.from('{}') });
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(rig.uplink.isOnline, false);
  assert.equal(
    rig.outbox.classStats().reduce((a, c) => a + c.depth, 0),
    1,
  );
});

test('sparkplug-b: NBIRTH with bdSeq, DBIRTH before DDATA with aliases, seq 0-255 wrapping, rebirth on NCMD, DDEATH, DCMD down', async (t) => {
  const cloud = await ProfileCloud.start({});
  t.after(() => cloud.close());
  const side = await CloudSide.connect(cloud.testUrl, ['spBv1.0/#']);
  t.after(() => side.close());
  const rig = await startUplink(
    `{ profile: sparkplug-b, url: "${cloud.url}", sparkplug: { group_id: plant1 } }`,
    'gw-sp',
  );
  t.after(() => rig.close());
  const base = 'spBv1.0/plant1';
  const decoded = () =>
    side.got
      .filter((g) => g.topic.startsWith(base) && !/\/[ND]CMD\//.test(g.topic))
      .map((g) => ({ topic: g.topic, p: tahu.decodePayload(g.payload) }));
  await side.waitFor(() => side.got.find((g) => g.topic === `${base}/NBIRTH/gw-sp`), 10000, 'NBIRTH');
  const nbirth = decoded()[0]!;
  assert.equal(num(nbirth.p.seq), 0);
  const bd = nbirth.p.metrics!.find((m) => m.name === 'bdSeq')!;
  assert.equal(bd.type, 'Int64');
  const rebirthMetric = nbirth.p.metrics!.find((m) => m.name === 'Node Control/Rebirth')!;
  assert.deepEqual([rebirthMetric.type, rebirthMetric.value], ['Boolean', false]);

  await rig.outbox.enqueueReadings(
    [reading('d1', 1700000000000, { temp: 21.5, ok: true }), reading('d1', 1700000001000, { temp: 22, ok: false })],
    'sensors/d1/data',
  );
  await side.waitFor(() => side.got.find((g) => g.topic === `${base}/DDATA/gw-sp/d1`), 10000, 'DDATA');
  let all = decoded();
  const dbirth = all.find((m) => m.topic === `${base}/DBIRTH/gw-sp/d1`)!;
  const ddata = all.find((m) => m.topic === `${base}/DDATA/gw-sp/d1`)!;
  assert.ok(all.indexOf(dbirth) < all.indexOf(ddata), 'DBIRTH before the first DDATA');
  const aliases = new Map(dbirth.p.metrics!.map((m) => [num(m.alias as number)!, m]));
  assert.deepEqual(dbirth.p.metrics!.map((m) => [m.name, m.type]).sort(), [
    ['ok', 'Boolean'],
    ['temp', 'Double'],
  ]);
  assert.ok(
    ddata.p.metrics!.every((m) => m.name === undefined && aliases.has(num(m.alias as number)!)),
    'DDATA by alias only',
  );
  assert.deepEqual(
    ddata.p.metrics!.map((m) => [aliases.get(num(m.alias as number)!)!.name, m.value]),
    [
      ['temp', 21.5],
      ['ok', true],
      ['temp', 22],
      ['ok', false],
    ],
  );

  // Rebirth request from a host application (encoded with Tahu's encoder).
  const before = decoded().length;
  await side.client.publishAsync(
    `${base}/NCMD/gw-sp`,
    Buffer.from(
      tahu.encodePayload({
        timestamp: Date.now(),
        metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }],
      }),
    ),
    { qos: 0 },
  );
  await side.waitFor(
    () =>
      decoded()
        .slice(before)
        .find((g) => g.topic === `${base}/DBIRTH/gw-sp/d1`),
    10000,
    'NBIRTH + DBIRTH after rebirth',
  );
  const reborn = decoded().slice(before);
  assert.equal(reborn[0]!.topic, `${base}/NBIRTH/gw-sp`);
  assert.equal(num(reborn[0]!.p.seq), 0);
  assert.equal(
    num(reborn[0]!.p.metrics!.find((m) => m.name === 'bdSeq')!.value as number),
    num(bd.value as number),
    'a rebirth keeps the bdSeq of the connection',
  );
  assert.equal(num(reborn[1]!.p.seq), 1);

  // Device command: DCMD by name → the contract's device command.
  await side.client.publishAsync(
    `${base}/DCMD/gw-sp/d1`,
    Buffer.from(
      tahu.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'setpoint', type: 'Double', value: 42.5 }] }),
    ),
    { qos: 0 },
  );
  await side.client.publishAsync(`${base}/DCMD/gw-sp/d1`, Buffer.from([0xff, 0xff, 0xff]), { qos: 0 }); // not protobuf
  await until(() => rig.downlinks.some((d) => d.kind === 'device-command'), 5000, 'DCMD down');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(
    rig.downlinks.map((d) =>
      d.kind === 'device-command' ? [d.deviceId, JSON.parse(d.payload.toString()) as unknown] : d.kind,
    ),
    [['d1', { setpoint: 42.5 }]],
  );

  // Device offline → DDEATH; then 300 more messages: seq runs on, wrapping 255 → 0.
  await rig.outbox.enqueue({ topic: 'devices/d1/status', payload: Buffer.from('{"online":false,"reason":"will"}') });
  await side.waitFor(() => side.got.find((g) => g.topic === `${base}/DDEATH/gw-sp/d1`), 10000, 'DDEATH');
  for (let i = 0; i < 300; i++) await rig.outbox.enqueue({ topic: `alerts/d${i}`, payload: Buffer.from(`{"n":${i}}`) });
  await side.waitFor(
    () => (side.got.filter((g) => g.topic === `${base}/NDATA/gw-sp`).length >= 300 ? true : undefined),
    30000,
    'NDATA',
  );
  all = decoded();
  const lastBirth = all.map((m) => m.topic).lastIndexOf(`${base}/NBIRTH/gw-sp`);
  const seqs = all.slice(lastBirth).map((m) => num(m.p.seq));
  for (let i = 0; i < seqs.length; i++) assert.equal(seqs[i], i % 256, `seq of message ${i} after NBIRTH`);
  assert.ok(seqs.length > 256, 'wrapped at least once');
  const nd = all.find((m) => m.topic === `${base}/NDATA/gw-sp`)!;
  const msg = JSON.parse(nd.p.metrics![0]!.value as string) as { topic: string; payload: string };
  assert.equal(msg.topic, 'alerts/d0');

  // Stop: NDEATH with the connection's bdSeq.
  await rig.uplink.stop();
  await side.waitFor(() => side.got.find((g) => g.topic === `${base}/NDEATH/gw-sp`), 5000, 'NDEATH');
  const death = decoded().find((m) => m.topic === `${base}/NDEATH/gw-sp`)!;
  assert.equal(num(death.p.metrics!.find((m) => m.name === 'bdSeq')!.value as number), num(bd.value as number));
  assert.equal(death.p.seq, undefined, 'NDEATH carries no seq');
});
