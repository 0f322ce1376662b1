import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { hashPassword } from '../../src/broker/password.js';
import type { BrokerService } from '../../src/broker/broker.js';
import type { Gateway } from '../../src/gateway.js';
import { collect, connect, metric, run, sleep, startGateway, until } from './broker-harness.js';

const FAST = { N: 1024, r: 8, p: 1 };

describe('local MQTT broker with real clients over TCP', () => {
  let dir: string;
  let gateway: Gateway;
  let broker: BrokerService;
  let url: string;
  const clients: MqttClient[] = [];
  const client = async (opts: Parameters<typeof connect>[1] = {}) => {
    const c = await connect(url, opts);
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'egw-broker-'));
    const users = [
      `    - username: dev`,
      `      password_hash: "${await hashPassword('pw', FAST)}"`,
      `    - username: ops`,
      `      password_hash: "${await hashPassword('ops-pw', FAST)}"`,
      `      acl:`,
      `        - { topic: "site/#", access: readwrite }`,
      `        - { topic: "site/secret/#", access: deny }`,
    ].join('\n');
    ({ gateway, broker, url } = await startGateway(join(dir, 'data'), `  max_packet_bytes: 4096\n  users:\n${users}`));
  });

  after(async () => {
    for (const c of clients) c.end(true);
    await gateway?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('QoS 0, 1 and 2 round trips keep their QoS', async () => {
    const sub = await client({ clientId: 'rt-sub' });
    const got = collect(sub);
    await sub.subscribeAsync('rt/#', { qos: 2 });
    const pub = await client({ clientId: 'rt-pub' });
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(`rt/q${qos}`, `m${qos}`, { qos });
    const msgs = await got.next(3);
    const byTopic = Object.fromEntries(msgs.map((m) => [m.topic, m]));
    for (const qos of [0, 1, 2]) {
      assert.equal(byTopic[`rt/q${qos}`]?.payload.toString(), `m${qos}`);
      assert.equal(byTopic[`rt/q${qos}`]?.qos, qos);
    }
  });

  test('retained message reaches a later subscriber with the retain flag', async () => {
    const pub = await client({ clientId: 'ret-pub' });
    await pub.publishAsync('devices/press-07/status', 'online', { qos: 1, retain: true });
    const sub = await client({ clientId: 'ret-sub' });
    const got = collect(sub);
    await sub.subscribeAsync('devices/+/status', { qos: 1 });
    const [m] = await got.next(1);
    assert.equal(m!.payload.toString(), 'online');
    assert.equal(m!.retain, true);
  });

  test('last will is published when a device drops without DISCONNECT; the registry says offline (will)', async () => {
    const watcher = await client({ clientId: 'will-watch' });
    const got = collect(watcher);
    await watcher.subscribeAsync('devices/dev-w/status', { qos: 1 });
    const dev = await client({
      clientId: 'dev-w',
      username: 'dev',
      password: 'pw',
      will: { topic: 'devices/dev-w/status', payload: Buffer.from('offline'), qos: 1, retain: false },
    });
    assert.equal(gateway.context.devices.get('dev-w')?.online, true);
    dev.stream.destroy(); // network loss, no DISCONNECT
    const [m] = await got.next(1);
    assert.equal(m!.payload.toString(), 'offline');
    await until(() => gateway.context.devices.get('dev-w')?.online === false, 5000, 'offline');
    assert.equal(gateway.context.devices.get('dev-w')?.reason, 'will');
  });

  test('a clean DISCONNECT marks the device offline without publishing its will', async () => {
    const dev = await client({
      clientId: 'dev-d',
      username: 'dev',
      password: 'pw',
      will: { topic: 'devices/dev-d/status', payload: Buffer.from('x'), qos: 0, retain: false },
    });
    await dev.endAsync();
    await until(() => gateway.context.devices.get('dev-d')?.online === false, 5000, 'offline');
    assert.equal(gateway.context.devices.get('dev-d')?.reason, 'disconnect');
  });

  test('wrong password, unknown user and anonymous-with-bad-id are refused; counted', async () => {
    const before = await metric(gateway.context.metrics, 'edge_gateway_mqtt_auth_failures_total');
    await assert.rejects(
      connect(url, { clientId: 'dev-x', username: 'dev', password: 'wrong' }),
      /Bad username or password/i,
    );
    await assert.rejects(
      connect(url, { clientId: 'dev-x', username: 'nobody', password: 'pw' }),
      /Bad username or password/i,
    );
    const r = await run('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(broker.port),
      '-i',
      'dev-x',
      '-u',
      'dev',
      '-P',
      'nope',
      '-t',
      'sensors/dev-x/data',
      '-m',
      '{}',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not authori[sz]ed|bad user ?name or password|Connection Refused/i);
    assert.equal(
      (await metric(gateway.context.metrics, 'edge_gateway_mqtt_auth_failures_total', { reason: 'bad_credentials' })) -
        before,
      3,
    );
  });

  test('ACL-denied publish is acknowledged, not delivered, counted, and the connection stays up', async () => {
    const spy = await client({ clientId: 'acl-spy' });
    const got = collect(spy);
    await spy.subscribeAsync('#', { qos: 1 });
    const dev = await client({ clientId: 'dev-a', username: 'dev', password: 'pw' });
    const denied0 = await metric(gateway.context.metrics, 'edge_gateway_mqtt_acl_denied_total', { action: 'publish' });
    await dev.publishAsync('sensors/someone-else/data', '{"t":1}', { qos: 1 }); // PUBACK arrives
    await dev.publishAsync('commands/dev-b', 'reboot', { qos: 0 });
    await dev.publishAsync('devices/dev-a/status', 'ok', { qos: 1 }); // allowed: proves the order
    await until(() => got.messages.some((m) => m.topic === 'devices/dev-a/status'), 5000, 'allowed publish');
    const live = got.messages.filter((m) => !m.retain && m.topic !== 'devices/dev-a/status');
    assert.deepEqual(
      live.map((m) => m.topic),
      [],
    );
    assert.equal(
      (await metric(gateway.context.metrics, 'edge_gateway_mqtt_acl_denied_total', { action: 'publish' })) - denied0,
      2,
    );
    assert.ok(dev.connected);
  });

  test('ACL on subscriptions: own commands granted, others 0x80; deny rules filter delivery', async () => {
    const dev = await client({ clientId: 'dev-s', username: 'dev', password: 'pw' });
    const granted = await dev.subscribeAsync('commands/dev-s', { qos: 1 });
    assert.deepEqual(
      granted.map((g) => g.qos),
      [1],
    );
    // mqtt.js turns a SUBACK return code 0x80 into an error.
    const s0 = await metric(gateway.context.metrics, 'edge_gateway_mqtt_acl_denied_total', { action: 'subscribe' });
    for (const topic of ['commands/#', 'sensors/+/data']) {
      await assert.rejects(dev.subscribeAsync(topic, { qos: 1 }), /Subscribe error/);
    }
    assert.equal(
      (await metric(gateway.context.metrics, 'edge_gateway_mqtt_acl_denied_total', { action: 'subscribe' })) - s0,
      2,
    );
    assert.ok(dev.connected);
    const ops = await client({ clientId: 'ops-1', username: 'ops', password: 'ops-pw' });
    const got = collect(ops);
    await ops.subscribeAsync('site/#', { qos: 1 });
    const pub = await client({ clientId: 'site-pub' });
    await pub.publishAsync('site/secret/key', 'k', { qos: 1 });
    await pub.publishAsync('site/open', 'o', { qos: 1 });
    const [m] = await got.next(1);
    assert.equal(m!.topic, 'site/open');
    await sleep(100);
    assert.equal(got.messages.length, 1);
  });

  test('mosquitto_pub and mosquitto_sub round trip (QoS 1 and 2)', async () => {
    const port = String(broker.port);
    const sub = run('mosquitto_sub', [
      '-h',
      '127.0.0.1',
      '-p',
      port,
      '-t',
      'mq/#',
      '-q',
      '2',
      '-C',
      '2',
      '-v',
      '-W',
      '8',
    ]);
    await until(
      async () =>
        (await metric(gateway.context.metrics, 'edge_gateway_mqtt_clients_connected')) >
        clients.filter((c) => c.connected).length,
      5000,
      'mosquitto_sub connected',
    );
    await sleep(200); // SUBSCRIBE follows CONNECT
    for (const q of ['1', '2']) {
      const p = await run('mosquitto_pub', [
        '-h',
        '127.0.0.1',
        '-p',
        port,
        '-t',
        `mq/q${q}`,
        '-q',
        q,
        '-m',
        `hello${q}`,
      ]);
      assert.equal(p.code, 0, p.stderr);
    }
    const r = await sub;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['mq/q1 hello1', 'mq/q2 hello2']);
  });

  test('a JSON reading published with QoS 1 is in the pipeline when PUBACK arrives (ack after commit)', async () => {
    const dev = await client({ clientId: 'dev-j', username: 'dev', password: 'pw' });
    await dev.publishAsync('sensors/dev-j/data', JSON.stringify({ ts: 1700000000000, temperature: 23.4, door: true }), {
      qos: 1,
    });
    // No waiting: the PUBACK was written only after the pipeline committed.
    const r = gateway.context.latest.get('dev-j');
    assert.deepEqual(r, {
      deviceId: 'dev-j',
      ts: 1700000000000,
      values: { temperature: 23.4, door: true },
      quality: 'good',
      source: 'mqtt',
    });
    assert.equal((await metric(gateway.context.metrics, 'edge_gateway_mqtt_readings_ingested_total')) >= 1, true);
    const d = gateway.context.devices.get('dev-j')!;
    assert.ok(d.online && d.messagesIn >= 1 && d.bytesIn > 10);
  });

  test('a local client publishing its own readings is registered as a device', async () => {
    const local = await client({ clientId: 'sim-1' });
    await local.publishAsync('sensors/sim-1/data', '{"v":1}', { qos: 1 });
    assert.equal(gateway.context.devices.get('sim-1')?.online, true);
    assert.equal(gateway.context.latest.get('sim-1')?.values['v'], 1);
  });

  test('hostile payloads are refused and counted without crashing or dropping the connection', async () => {
    const m = gateway.context.metrics;
    const inv0 = await metric(m, 'edge_gateway_mqtt_ingest_errors_total', { reason: 'invalid_payload' });
    const id0 = await metric(m, 'edge_gateway_mqtt_ingest_errors_total', { reason: 'device_id' });
    const spy = await client({ clientId: 'hostile-spy' });
    const got = collect(spy);
    await spy.subscribeAsync('sensors/#', { qos: 1 });
    const local = await client({ clientId: 'hostile-1' });
    for (const payload of ['{"t":', 'null', '[]', '{"t":[1]}', '\u0000\u0001', '{"values":{"a b":1}}']) {
      await local.publishAsync('sensors/hostile-1/data', payload, { qos: 1 });
    }
    await local.publishAsync('sensors/bad id/data', '{"t":1}', { qos: 1 });
    await local.publishAsync(`sensors/${'x'.repeat(70)}/data`, '{"t":1}', { qos: 2 });
    await local.publishAsync('sensors/hostile-1/data', '{"t":2}', { qos: 1 });
    const [ok] = await got.next(1);
    assert.equal(ok!.payload.toString(), '{"t":2}', 'refused payloads are not routed either');
    assert.equal((await metric(m, 'edge_gateway_mqtt_ingest_errors_total', { reason: 'invalid_payload' })) - inv0, 6);
    assert.equal((await metric(m, 'edge_gateway_mqtt_ingest_errors_total', { reason: 'device_id' })) - id0, 2);
    assert.equal(gateway.context.latest.get('hostile-1')?.values['t'], 2);
    assert.ok(local.connected);
    assert.ok((gateway.context.devices.get('hostile-1')?.refused ?? 0) >= 6);
  });

  test('a packet over max_packet_bytes closes that connection only, before it is buffered', async () => {
    const m = gateway.context.metrics;
    const big0 = await metric(m, 'edge_gateway_mqtt_connections_dropped_total', { reason: 'packet_too_large' });
    const big = await client({ clientId: 'big-1' });
    const closed = new Promise<void>((r) => big.once('close', () => r()));
    big.publish('sensors/big-1/data', Buffer.alloc(5000, 0x20), { qos: 0 });
    await closed;
    // A raw socket announcing a 256 MB packet after CONNECT is cut after its header.
    const raw = netConnect(broker.port!, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    raw.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]));
    await new Promise((r) => raw.once('close', r));
    assert.equal(
      (await metric(m, 'edge_gateway_mqtt_connections_dropped_total', { reason: 'packet_too_large' })) - big0,
      2,
    );
    // Garbage that is not MQTT at all.
    const junk = netConnect(broker.port!, '127.0.0.1');
    await new Promise((r) => junk.once('connect', r));
    junk.write('GET / HTTP/1.1\r\n\r\n');
    await new Promise((r) => junk.once('close', r));
    const still = await client({ clientId: 'after-big' });
    await still.publishAsync('x/y', 'z', { qos: 1 });
    assert.ok(gateway.health().services['broker']?.ok);
  });

  test('a device cannot set a will on a topic its ACL does not allow', async () => {
    await assert.rejects(
      connect(url, {
        clientId: 'dev-wx',
        username: 'dev',
        password: 'pw',
        will: { topic: 'commands/dev-y', payload: Buffer.from('x'), qos: 0, retain: false },
      }),
      /Not authorized/i,
    );
  });

  test('clients may not publish to $ topics (dropped, counted)', async () => {
    const local = await client({ clientId: 'sys-pub' });
    const d0 = await metric(gateway.context.metrics, 'edge_gateway_mqtt_acl_denied_total', { action: 'publish' });
    await local.publishAsync('$SYS/fake', 'x', { qos: 1 });
    assert.equal(
      (await metric(gateway.context.metrics, 'edge_gateway_mqtt_acl_denied_total', { action: 'publish' })) - d0,
      1,
    );
    assert.ok(local.connected);
  });
});
