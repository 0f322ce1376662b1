import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet';
import { Value } from '@sinclair/typebox/value';
import { Registry } from 'prom-client';
import { BrokerService } from '../../src/broker/broker.js';
import { BrokerConfigSchema, type BrokerConfig } from '../../src/broker/config.js';
import { hashPassword } from '../../src/broker/password.js';
import { DeviceRegistry } from '../../src/devices/registry.js';
import { createLogger } from '../../src/log/logger.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { openDatabase } from '../../src/store/db.js';
import { GatewayProcess, tempDir } from '../helpers/gateway-process.js';
import { brokerConfigYaml, freePort, run, sleep } from './broker-harness.js';

/**
 * MQTT 5 on the local broker (docs/broker.md, "MQTT 5"): the built gateway as a child process,
 * mqtt.js v5 and mosquitto_pub/sub -V 5 as clients, MQTT 3.1.1 clients beside them for the parts
 * that must stay as they were. Real sockets, a real SQLite file, kill -9 between steps.
 */
const FAST = { N: 1024, r: 8, p: 1 };
const tmp = tempDir('egw-mqtt5-');
const procs: GatewayProcess[] = [];
const clients: MqttClient[] = [];
after(async () => {
  for (const c of clients) c.end(true);
  for (const p of procs) await p.stop('SIGKILL');
  tmp.cleanup();
});

async function startProcess(cfg: string): Promise<GatewayProcess> {
  const p = GatewayProcess.start(cfg);
  procs.push(p);
  await p.ready(20000);
  return p;
}

interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  properties: IPublishPacket['properties'];
}

/** A client that never reconnects by itself; messages are collected from the first byte. */
async function client(
  url: string,
  opts: IClientOptions,
): Promise<{ c: MqttClient; connack: IConnackPacket; got: Received[] }> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, keepalive: 30, ...opts });
  clients.push(c);
  const got: Received[] = [];
  c.on('message', (topic, payload, packet) =>
    got.push({
      topic,
      payload: payload.toString(),
      qos: packet.qos,
      retain: packet.retain,
      properties: packet.properties,
    }),
  );
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  return { c, connack, got };
}

/** SUBACK reason codes / granted QoS, whatever mqtt.js makes of failures (it rejects on any). */
async function subscribeCodes(c: MqttClient, filters: string[], qos: 0 | 1 | 2): Promise<number[]> {
  const suback = new Promise<number[]>((resolve) =>
    c.on('packetreceive', (p) => {
      if (p.cmd === 'suback') resolve(p.granted.map((g) => (typeof g === 'number' ? g : (g as { qos: number }).qos)));
    }),
  );
  await c.subscribeAsync(filters, { qos }).catch(() => undefined);
  return suback;
}

/** aedes hands user properties over as an object without prototype; compare the entries. */
const plain = (o: object | undefined): object | undefined => (o === undefined ? o : { ...o });

async function waitFor<T>(list: T[], n: number, timeoutMs = 5000): Promise<T[]> {
  const end = Date.now() + timeoutMs;
  while (list.length < n && Date.now() < end) await sleep(20);
  assert.ok(list.length >= n, `got ${list.length} of ${n} within ${timeoutMs} ms`);
  return list;
}

/** A raw MQTT connection (mqtt-packet) for what no client library lets a test do (withhold PUBREL). */
class Raw {
  readonly packets: Packet[] = [];
  closed = false;
  private constructor(readonly sock: Socket) {}
  static async open(port: number, version: 4 | 5, clientId: string): Promise<Raw> {
    const sock = netConnect(port, '127.0.0.1');
    const raw = new Raw(sock);
    const p = mqttParser({ protocolVersion: version });
    p.on('packet', (pk: Packet) => raw.packets.push(pk));
    sock.on('data', (d) => p.parse(d));
    sock.on('close', () => (raw.closed = true));
    sock.on('error', () => {});
    await new Promise<void>((r) => sock.once('connect', () => r()));
    raw.send(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId, keepalive: 30 },
      version,
    );
    await raw.until((pk) => pk.cmd === 'connack');
    return raw;
  }
  send(packet: Packet, version: 4 | 5): void {
    this.sock.write(generate(packet, { protocolVersion: version }));
  }
  async until(pred: (p: Packet) => boolean, timeoutMs = 5000): Promise<Packet | undefined> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const hit = this.packets.find(pred);
      if (hit) return hit;
      if (this.closed) return undefined;
      await sleep(10);
    }
    return undefined;
  }
}

describe('MQTT 5 on the local broker (gateway child process)', () => {
  let port = 0;
  let url = '';
  let cfg = '';
  let gw: GatewayProcess;

  before(async () => {
    port = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    const users = [
      '  keepalive_max_s: 60',
      '  receive_maximum: 5',
      '  users:',
      `    - username: dev-1`,
      `      password_hash: "${await hashPassword('pw', FAST)}"`,
    ].join('\n');
    cfg = tmp.file('gw.yaml', brokerConfigYaml(join(tmp.dir, 'data'), port, users, 'info'));
    gw = await startProcess(cfg);
  });

  test('CONNACK announces Receive Maximum, Maximum Packet Size, Topic Alias Maximum, Server Keep Alive and the session expiry bound', async () => {
    const { c, connack } = await client(url, {
      protocolVersion: 5,
      clientId: 'v5-connack',
      keepalive: 120, // over keepalive_max_s: imposed, not refused
      properties: { sessionExpiryInterval: 0xffffffff },
    });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.receiveMaximum, 5);
    assert.equal(connack.properties?.maximumPacketSize, 262144);
    assert.equal(connack.properties?.topicAliasMaximum, 10);
    assert.equal(connack.properties?.serverKeepAlive, 60);
    assert.equal(connack.properties?.sessionExpiryInterval, 604800); // "never" cut to session_expiry_max_s
    assert.equal(connack.properties?.sharedSubscriptionAvailable, false);
    await c.endAsync();
    // The same keepalive from a 3.1.1 client is refused as before (CONNACK 2: it cannot be told).
    await assert.rejects(
      mqtt.connectAsync(url, { clientId: 'v4-keepalive', keepalive: 120, reconnectPeriod: 0, connectTimeout: 5000 }),
      /Identifier rejected/,
    );
  });

  test('ACL refusals: PUBACK and SUBACK 0x87 for MQTT 5, unchanged for 3.1.1; the connection stays up', async () => {
    const v5 = await client(url, { protocolVersion: 5, clientId: 'dev-1', username: 'dev-1', password: 'pw' });
    await assert.rejects(v5.c.publishAsync('commands/other', 'x', { qos: 1 }), (err: Error & { code?: number }) => {
      assert.equal(err.code, 0x87);
      return true;
    });
    assert.deepEqual(await subscribeCodes(v5.c, ['commands/dev-1', 'sensors/#'], 1), [1, 0x87]);
    // Still connected: an allowed reading is acknowledged with success.
    const ok = (await v5.c.publishAsync('sensors/dev-1/data', '{"temperature": 20.5}', {
      qos: 1,
      properties: { contentType: 'application/json' },
    })) as { reasonCode?: number } | undefined;
    assert.equal(ok?.reasonCode ?? 0, 0);
    await v5.c.endAsync();

    const v4 = await client(url, { protocolVersion: 4, clientId: 'dev-1', username: 'dev-1', password: 'pw' });
    await v4.c.publishAsync('commands/other', 'x', { qos: 1 }); // 3.1.1: acknowledged and discarded
    assert.deepEqual(await subscribeCodes(v4.c, ['commands/dev-1', 'sensors/#'], 1), [1, 128]);
    await v4.c.endAsync();

    // mosquitto_pub/sub -V 5 see the same reason codes.
    const pub = await run('mosquitto_pub', [
      ...['-V', '5', '-h', '127.0.0.1', '-p', String(port), '-i', 'dev-1', '-u', 'dev-1', '-P', 'pw'],
      ...['-q', '1', '-t', 'commands/other', '-m', 'x'],
    ]);
    assert.match(pub.stderr, /Publish 1 failed: Not authorized/);
    const sub = await run('mosquitto_sub', [
      ...['-V', '5', '-h', '127.0.0.1', '-p', String(port), '-i', 'dev-1', '-u', 'dev-1', '-P', 'pw'],
      ...['-t', 'sensors/#', '-W', '2', '-d'],
    ]);
    assert.match(sub.stdout, /Subscribed \(mid: 1\): 135/);
  });

  test('user properties and content type reach local subscribers (mqtt.js and mosquitto_sub -V 5)', async () => {
    const s = await client(url, { protocolVersion: 5, clientId: 'v5-props-sub' });
    await s.c.subscribeAsync('sensors/+/data', { qos: 1 });
    const mosq = run(
      'mosquitto_sub',
      ['-V', '5', '-h', '127.0.0.1', '-p', String(port), '-t', 'sensors/+/data', '-C', '1', '-F', '%t|%p|%C|%P'],
      10000,
    );
    await sleep(500); // mosquitto_sub subscribed
    const d = await client(url, { protocolVersion: 5, clientId: 'dev-1', username: 'dev-1', password: 'pw' });
    await d.c.publishAsync('sensors/dev-1/data', '{"temperature": 21.5}', {
      qos: 1,
      properties: { contentType: 'application/json', userProperties: { site: 'north', line: ['a', 'b'] } },
    });
    const [m] = await waitFor(s.got, 1);
    assert.equal(m!.payload, '{"temperature": 21.5}');
    assert.equal(m!.properties?.contentType, 'application/json');
    assert.deepEqual(plain(m!.properties?.userProperties), { site: 'north', line: ['a', 'b'] });
    const out = await mosq;
    assert.match(out.stdout, /sensors\/dev-1\/data\|\{"temperature": 21.5\}\|application\/json\|site:north/);
    // A payload that says it is the codec but is not: refused (dead letter), acknowledged.
    await d.c.publishAsync('sensors/dev-1/data', '{"temperature": 1}', {
      qos: 1,
      properties: { contentType: 'application/vnd.edge-gateway.codec' },
    });
    await d.c.endAsync();
    await s.c.endAsync();
  });

  test('inbound QoS 2 beyond receive_maximum: DISCONNECT 0x93 for MQTT 5, closed for 3.1.1; gateway keeps running', async () => {
    for (const version of [5, 4] as const) {
      const raw = await Raw.open(port, version, `rx-${version}`);
      const publish = (id: number) =>
        raw.send(
          {
            cmd: 'publish',
            topic: 'flood/x',
            payload: Buffer.from('x'),
            qos: 2,
            messageId: id,
            dup: false,
            retain: false,
          },
          version,
        );
      // PUBREC comes back, PUBREL is withheld: each stays awaiting PUBREL. 5 = receive_maximum.
      for (let id = 1; id <= 5; id++) publish(id);
      await raw.until((p) => p.cmd === 'pubrec' && p.messageId === 5);
      assert.equal(raw.packets.filter((p) => p.cmd === 'pubrec').length, 5);
      publish(5); // a DUP of one awaiting PUBREL reuses its slot
      await raw.until((p) => p.cmd === 'pubrec' && raw.packets.filter((q) => q.cmd === 'pubrec').length === 6);
      assert.equal(raw.closed, false);
      publish(6); // one over
      const end = await raw.until((p) => p.cmd === 'disconnect', 5000);
      if (version === 5) assert.equal((end as { reasonCode?: number } | undefined)?.reasonCode, 0x93);
      const deadline = Date.now() + 5000;
      while (!raw.closed && Date.now() < deadline) await sleep(20);
      assert.ok(raw.closed, `v${version} connection closed`);
      assert.equal(raw.packets.filter((p) => p.cmd === 'pubrec').length, 6);
      raw.sock.destroy();
    }
    // Prototype-named ids and filters (GHSA-52qw-whmv-87c5) are ordinary ids here.
    for (const id of ['__proto__', 'constructor']) {
      const x = await client(url, { protocolVersion: 5, clientId: id });
      // aedes 2.0.0-beta.1 alone ended the process on this SUBSCRIBE; `__proto__` is refused.
      assert.deepEqual(await subscribeCodes(x.c, ['constructor', '__proto__'], 1), [1, 0x87]);
      await x.c.publishAsync('constructor', 'p', { qos: 1 });
      await waitFor(x.got, 1);
      await x.c.endAsync();
    }
    assert.equal(gw.child.exitCode, null);
  });

  test('a will with properties and Will Delay: delivered after the delay with its user properties, without Will Delay Interval', async () => {
    const s = await client(url, { protocolVersion: 5, clientId: 'v5-will-sub' });
    await s.c.subscribeAsync('will/#', { qos: 1 });
    const w = await client(url, {
      protocolVersion: 5,
      clientId: 'v5-will',
      properties: { sessionExpiryInterval: 10 },
      will: {
        topic: 'will/v5',
        payload: Buffer.from('gone'),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 1, userProperties: { a: '2' } },
      },
    });
    const t0 = Date.now();
    w.c.stream.destroy(); // no DISCONNECT: the will is due
    const [m] = await waitFor(s.got, 1, 5000);
    assert.ok(Date.now() - t0 >= 900, 'will delayed');
    assert.equal(m!.payload, 'gone');
    assert.deepEqual(plain(m!.properties?.userProperties), { a: '2' });
    assert.equal((m!.properties as Record<string, unknown> | undefined)?.['willDelayInterval'], undefined);
    await s.c.endAsync();
  });

  test('topic aliases: up to topic_alias_maximum (10) resolve; an alias over it or unknown gets DISCONNECT 0x94', async () => {
    const s = await client(url, { protocolVersion: 5, clientId: 'v5-alias-sub' });
    await s.c.subscribeAsync('alias/#', { qos: 1 });
    const raw = await Raw.open(port, 5, 'v5-alias');
    const pub = (topic: string, alias: number, id: number) =>
      raw.send(
        {
          cmd: 'publish',
          topic,
          payload: Buffer.from(`m${id}`),
          qos: 1,
          messageId: id,
          dup: false,
          retain: false,
          properties: { topicAlias: alias },
        },
        5,
      );
    pub('alias/one', 10, 1); // sets alias 10
    pub('', 10, 2); // uses it
    await waitFor(s.got, 2);
    assert.deepEqual(
      s.got.map((m) => [m.topic, m.payload, m.properties?.topicAlias]),
      [
        ['alias/one', 'm1', undefined],
        ['alias/one', 'm2', undefined],
      ],
    );
    pub('alias/two', 11, 3); // over the maximum
    const end = await raw.until((p) => p.cmd === 'disconnect');
    assert.equal((end as { reasonCode?: number } | undefined)?.reasonCode, 0x94);
    raw.sock.destroy();
    const raw2 = await Raw.open(port, 5, 'v5-alias-2');
    raw2.send(
      {
        cmd: 'publish',
        topic: '',
        payload: Buffer.from('x'),
        qos: 0,
        dup: false,
        retain: false,
        properties: { topicAlias: 3 },
      },
      5,
    );
    const end2 = await raw2.until((p) => p.cmd === 'disconnect');
    assert.equal((end2 as { reasonCode?: number } | undefined)?.reasonCode, 0x94); // never set
    raw2.sock.destroy();
    await s.c.endAsync();
  });

  test('a client Maximum Packet Size is honoured: larger messages are not sent to it', async () => {
    const s = await client(url, { protocolVersion: 5, clientId: 'v5-small', properties: { maximumPacketSize: 128 } });
    await s.c.subscribeAsync('big/#', { qos: 1 });
    const p = await client(url, { protocolVersion: 5, clientId: 'v5-big-pub' });
    await p.c.publishAsync('big/1', 'x'.repeat(500), { qos: 1 });
    await p.c.publishAsync('big/2', 'small', { qos: 1 });
    await waitFor(s.got, 1);
    await sleep(200);
    assert.deepEqual(
      s.got.map((m) => m.topic),
      ['big/2'],
    );
    await s.c.endAsync();
    await p.c.endAsync();
  });

  test('kill -9: a persistent v5 session keeps its queued messages (expiry honoured, properties kept), one whose Session Expiry passed is gone, a retained message keeps its properties', async () => {
    const sess = await client(url, {
      protocolVersion: 5,
      clientId: 'v5-persist',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await sess.c.subscribeAsync('q5/#', { qos: 1 });
    await sess.c.endAsync();
    // A session whose 2 s Session Expiry passes while the gateway is down.
    const short = await client(url, {
      protocolVersion: 5,
      clientId: 'v5-short-session',
      clean: false,
      properties: { sessionExpiryInterval: 2 },
    });
    await short.c.subscribeAsync('q5/#', { qos: 1 });
    await short.c.endAsync();
    // mosquitto_sub -V 5 persistent session too (-c, session expiry via -x).
    const m0 = await run('mosquitto_sub', [
      ...['-V', '5', '-h', '127.0.0.1', '-p', String(port), '-c', '-x', '3600', '-i', 'mosq-v5-persist'],
      ...['-q', '1', '-t', 'q5/#', '-W', '1'],
    ]);
    assert.ok(m0.code === 27 || m0.code === 0, `mosquitto_sub: ${m0.code} ${m0.stderr}`);

    const pub = await client(url, { protocolVersion: 5, clientId: 'v5-persist-pub' });
    // PUBACK comes after the commit (docs/broker.md "Persistence"): safe to kill after it.
    await pub.c.publishAsync('q5/short', 'expires', { qos: 1, properties: { messageExpiryInterval: 2 } });
    await pub.c.publishAsync('q5/long', 'stays', {
      qos: 1,
      properties: { messageExpiryInterval: 600, userProperties: { k: 'v' }, contentType: 'text/plain' },
    });
    await pub.c.publishAsync('r5/state', 'retained', {
      qos: 1,
      retain: true,
      properties: { userProperties: { fw: '1.2.3' }, contentType: 'text/plain', messageExpiryInterval: 600 },
    });
    await pub.c.endAsync();

    assert.equal(await gw.stop('SIGKILL'), 'SIGKILL');
    await sleep(2500); // q5/short's 2 s pass while the gateway is down
    gw = await startProcess(cfg);

    const back = await client(url, {
      protocolVersion: 5,
      clientId: 'v5-persist',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(back.connack.sessionPresent, true);
    await waitFor(back.got, 1);
    await sleep(300);
    assert.deepEqual(
      back.got.map((m) => [m.topic, m.payload]),
      [['q5/long', 'stays']],
    );
    const long = back.got[0]!;
    assert.deepEqual(plain(long.properties?.userProperties), { k: 'v' });
    assert.equal(long.properties?.contentType, 'text/plain');
    const left = long.properties?.messageExpiryInterval ?? 0;
    assert.ok(left > 0 && left <= 600, `remaining expiry ${left}`);
    await back.c.endAsync();

    // aedes keeps session timers in memory only; the stored deadline ended this one at start.
    const gone = await client(url, {
      protocolVersion: 5,
      clientId: 'v5-short-session',
      clean: false,
      properties: { sessionExpiryInterval: 2 },
    });
    assert.equal(gone.connack.sessionPresent, false);
    await sleep(300);
    assert.deepEqual(gone.got, []);
    await gone.c.endAsync();

    const m1 = await run('mosquitto_sub', [
      ...['-V', '5', '-h', '127.0.0.1', '-p', String(port), '-c', '-x', '3600', '-i', 'mosq-v5-persist'],
      ...['-q', '1', '-t', 'q5/#', '-W', '2', '-F', '%t|%p|%P'],
    ]);
    assert.equal(m1.stdout.trim(), 'q5/long|stays|k:v');

    const r = await client(url, { protocolVersion: 5, clientId: 'v5-retained' });
    await r.c.subscribeAsync('r5/#', { qos: 1 });
    const [ret] = await waitFor(r.got, 1);
    assert.equal(ret!.payload, 'retained');
    assert.equal(ret!.retain, true);
    assert.deepEqual(plain(ret!.properties?.userProperties), { fw: '1.2.3' });
    assert.equal(ret!.properties?.contentType, 'text/plain');
    await r.c.endAsync();
  });
});

test('pipeline overloaded: an MQTT 5 reading gets DISCONNECT 0x89 and no PUBACK (the client retransmits), a 3.1.1 one a closed connection', async () => {
  const log = createLogger({ level: 'silent' });
  const db = openDatabase({ path: join(tmp.dir, 'overload.db'), durability: 'normal' });
  // A pipeline already full: one reading pending in a sink that never commits, maxPending 1, so every
  // further reading is refused with EGW_PIPELINE_OVERLOAD (an idle pipeline always takes one batch).
  const pipeline = new Pipeline({ log, maxPending: 1 });
  pipeline.addSink({ name: 'stuck', accept: () => new Promise<void>(() => undefined) });
  void pipeline.ingest([{ deviceId: 'filler', ts: Date.now(), values: { v: 1 }, quality: 'good', source: 'mqtt' }], {
    topic: 'sensors/filler/data',
    origin: 'test',
  });
  const broker = new BrokerService({
    config: Value.Default(BrokerConfigSchema, { port: 0 }) as BrokerConfig,
    log,
    pipeline,
    devices: new DeviceRegistry(db),
    registry: new Registry(),
    db,
  });
  await broker.start();
  try {
    for (const version of [5, 4] as const) {
      const raw = await Raw.open(broker.port!, version, `ovl-${version}`);
      raw.send(
        {
          cmd: 'publish',
          topic: `sensors/ovl-${version}/data`,
          payload: Buffer.from('{"t": 1}'),
          qos: 1,
          messageId: 7,
          dup: false,
          retain: false,
        },
        version,
      );
      const deadline = Date.now() + 5000;
      while (!raw.closed && Date.now() < deadline) await sleep(20);
      assert.ok(raw.closed, `v${version} closed`);
      assert.equal(
        raw.packets.some((p) => p.cmd === 'puback'),
        false,
      );
      if (version === 5) {
        const d = raw.packets.find((p) => p.cmd === 'disconnect') as { reasonCode?: number } | undefined;
        assert.equal(d?.reasonCode, 0x89);
      }
    }
  } finally {
    await broker.stop();
    db.close();
  }
});
