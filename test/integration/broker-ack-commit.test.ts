import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { MqttClient } from 'mqtt';
import { tempDir } from '../helpers/gateway-process.js';
import { collect, connect, startGateway } from './broker-harness.js';

/**
 * Acknowledge after commit for what the broker must keep (docs/broker.md, "Persistence"): every
 * QoS 1 message whose PUBACK the publisher received survives a `kill -9` sent the moment that
 * PUBACK arrives — as a retained message, and in the queue of a persistent session that is
 * offline. 100 rounds of: start the broker, publish a burst, SIGKILL on the first PUBACK(s).
 * Then one restart checks every acknowledged message. Two brokers run side by side, 50 rounds each. aedes 1.2 alone writes the PUBACK before
 * it stores either (lib/handlers/publish.js); this test loses messages without the fix.
 */
const CHILD = new URL('./broker-crash-child.js', import.meta.url).pathname;
const ROUNDS = 100;
/** Messages per burst: half retained on their own topic, half for the offline session. */
const BURST = 20;
const tmp = tempDir('egw-ack-commit-');
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  tmp.cleanup();
});

async function startBroker(dbPath: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [CHILD, dbPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const lines = createInterface({ input: child.stdout! });
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  try {
    for await (const line of lines) {
      const parsed = JSON.parse(line) as { port?: unknown };
      if (typeof parsed.port === 'number') return { child, port: parsed.port };
    }
  } finally {
    clearTimeout(timer);
  }
  throw new Error('broker child exited before listening');
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
}

// --- a minimal MQTT 3.1.1 client on a raw socket, so the kill is sent in the very callback that
// sees the PUBACK bytes (no client library queueing in between) ---

function str(s: string): Buffer {
  const b = Buffer.from(s);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function packet(header: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    len.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([header, ...len]), body]);
}

/** CONNECT, MQTT 3.1.1 §3.1: protocol level 4, keepalive 30 s. */
function connectPacket(clientId: string, clean: boolean): Buffer {
  const head = Buffer.concat([str('MQTT'), Buffer.from([4, clean ? 0x02 : 0x00, 0, 30])]);
  return packet(0x10, Buffer.concat([head, str(clientId)]));
}

/** PUBLISH QoS 1 (§3.3): header 0x32, retain bit 0x01. */
function publishPacket(topic: string, id: number, payload: string, retain: boolean): Buffer {
  const idBuf = Buffer.alloc(2);
  idBuf.writeUInt16BE(id);
  return packet(0x32 | (retain ? 1 : 0), Buffer.concat([str(topic), idBuf, Buffer.from(payload)]));
}

function subscribePacket(id: number, filter: string): Buffer {
  const idBuf = Buffer.alloc(2);
  idBuf.writeUInt16BE(id);
  return packet(0x82, Buffer.concat([idBuf, str(filter), Buffer.from([1])]));
}

interface Packet {
  type: number;
  flags: number;
  body: Buffer;
}

/** Splits a byte stream into MQTT packets (fixed header + Remaining Length, §2.2). */
function packetReader(onPackets: (packets: Packet[]) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    const out: Packet[] = [];
    for (;;) {
      let len = 0;
      let mul = 1;
      let i = 1;
      for (; i < buf.length && i <= 4; i++) {
        len += (buf[i]! & 0x7f) * mul;
        mul *= 128;
        if ((buf[i]! & 0x80) === 0) break;
      }
      if (i >= buf.length || buf.length < i + 1 + len) break;
      out.push({ type: buf[0]! >> 4, flags: buf[0]! & 0x0f, body: buf.subarray(i + 1, i + 1 + len) });
      buf = buf.subarray(i + 1 + len);
    }
    if (out.length > 0) onPackets(out);
  };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Connects and resolves on CONNACK 0 (§3.2); rejects otherwise or after 5 s. `after` gets every
 * later packet — also those in the same read as the CONNACK (a session's queued messages).
 */
async function mqttConnect(
  port: number,
  clientId: string,
  clean: boolean,
  after?: (packets: Packet[], s: Socket) => void,
): Promise<Socket> {
  const s = await open(port);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no CONNACK for ${clientId}`)), 5000);
    let connected = false;
    const read = packetReader((ps) => {
      if (!connected) {
        const p = ps.shift()!;
        clearTimeout(timer);
        if (!after) s.off('data', read);
        if (p.type !== 2 || p.body[1] !== 0) return reject(new Error(`CONNACK ${p.body[1]} for ${clientId}`));
        connected = true;
        resolve();
      }
      if (after && ps.length > 0) after(ps, s);
    });
    s.on('data', read);
    s.write(connectPacket(clientId, clean));
  });
  return s;
}

interface LaneResult {
  acks: number;
  retained: number;
  queued: number;
  lost: string[];
}

/** `rounds` kill -9 rounds on one database, then one restart that checks every acknowledged message. */
async function lane(name: string, rounds: number): Promise<LaneResult> {
  const dbPath = join(tmp.dir, `${name}.db`);
  let { child, port } = await startBroker(dbPath);

  // The persistent session: subscribes, then stays offline for the whole lane.
  const sub = await mqttConnect(port, 'offline-sub', false);
  await new Promise<void>((resolve) => {
    sub.on(
      'data',
      packetReader((ps) => ps.some((p) => p.type === 9) && resolve()),
    );
    sub.write(subscribePacket(1, 'q/#'));
  });
  sub.end(Buffer.from([0xe0, 0])); // DISCONNECT
  await once(sub, 'close');

  const acked = { retained: new Set<string>(), queued: new Set<string>() };
  let acks = 0;
  for (let round = 0; round < rounds; round++) {
    if (round > 0) ({ child, port } = await startBroker(dbPath));
    const pub = await mqttConnect(port, `pub-${round}`, true);
    const sent = new Map<number, { topic: string; retained: boolean }>();
    const burst: Buffer[] = [];
    for (let i = 0; i < BURST; i++) {
      const retained = i % 2 === 0;
      const topic = retained ? `r/${round}/${i}` : `q/${round}/${i}`;
      sent.set(i + 1, { topic, retained });
      burst.push(publishPacket(topic, i + 1, `m-${round}-${i}`, retained));
    }
    const dead = killed(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} round ${round}: no PUBACK within 5 s`)), 5000);
      pub.on(
        'data',
        packetReader((ps) => {
          const ids = ps.filter((p) => p.type === 4).map((p) => p.body.readUInt16BE(0));
          if (ids.length === 0) return;
          // Synchronously, in the callback that saw the PUBACK bytes.
          child.kill('SIGKILL');
          clearTimeout(timer);
          for (const id of ids) {
            const m = sent.get(id)!;
            (m.retained ? acked.retained : acked.queued).add(m.topic);
          }
          acks += ids.length;
          resolve();
        }),
      );
      pub.on('error', () => {}); // the broker dies under it
      pub.write(Buffer.concat(burst));
    });
    await dead;
    pub.destroy();
  }

  // One more start: everything acknowledged must be there.
  ({ child, port } = await startBroker(dbPath));
  const retainedSeen = new Set<string>();
  const queuedSeen = new Set<string>();
  const collector =
    (into: Set<string>, prefix: string) =>
    (ps: Packet[], s: Socket): void => {
      for (const p of ps) {
        if (p.type !== 3) continue;
        const topic = p.body.subarray(2, 2 + p.body.readUInt16BE(0)).toString();
        if (topic.startsWith(prefix)) into.add(topic);
        if (((p.flags >> 1) & 3) > 0) {
          const id = p.body.readUInt16BE(2 + p.body.readUInt16BE(0));
          s.write(Buffer.from([0x40, 2, id >> 8, id & 0xff])); // PUBACK
        }
      }
    };
  const check = await mqttConnect(port, 'checker', true, collector(retainedSeen, 'r/'));
  check.write(subscribePacket(1, 'r/#'));
  const queue = await mqttConnect(port, 'offline-sub', false, collector(queuedSeen, 'q/'));
  const deadline = performance.now() + 10000;
  const missing = () => [
    ...[...acked.retained].filter((t) => !retainedSeen.has(t)),
    ...[...acked.queued].filter((t) => !queuedSeen.has(t)),
  ];
  while (missing().length > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  check.destroy();
  queue.destroy();
  child.kill('SIGKILL');
  return { acks, retained: acked.retained.size, queued: acked.queued.size, lost: missing() };
}

test(
  `${ROUNDS} rounds of kill -9 at the first PUBACK: every acknowledged QoS 1 message is retained / queued for the offline session`,
  { timeout: 180000 },
  async () => {
    const started = performance.now();
    // Two independent brokers (own database each) side by side, half of the rounds each: the
    // rounds mostly wait for a process to start, and the machine has two cores.
    const lanes = await Promise.all([lane('a', ROUNDS / 2), lane('b', ROUNDS / 2)]);
    const sum = (k: 'acks' | 'retained' | 'queued') => lanes.reduce((n, l) => n + l[k], 0);
    const lost = lanes.flatMap((l, i) => l.lost.map((t) => `${'ab'[i]}:${t}`));
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `ack-commit: ${ROUNDS} rounds, ${sum('acks')} PUBACKs seen before kill -9 (${sum('retained')} retained, ${sum('queued')} queued), lost ${lost.length}, ${seconds} s`,
    );
    assert.ok(sum('acks') >= ROUNDS);
    assert.deepEqual(lost, [], `acknowledged but lost after kill -9: ${lost.slice(0, 20).join(' ')}`);
  },
);

test('QoS 1 order per topic is kept when retained and plain messages alternate (live and persistent subscribers)', async () => {
  const { gateway, url } = await startGateway(join(tmp.dir, 'order'));
  const clients: MqttClient[] = [];
  try {
    const live = await connect(url, { clientId: 'order-live' });
    const durable = await connect(url, { clientId: 'order-durable', clean: false });
    clients.push(live, durable);
    const liveGot = collect(live);
    const durableGot = collect(durable);
    await live.subscribeAsync('order/t', { qos: 1 });
    await durable.subscribeAsync('order/t', { qos: 1 });
    const pub = await connect(url, { clientId: 'order-pub' });
    clients.push(pub);
    // Pipelined (not awaited one by one): the broker reads many PUBLISHes per socket read, and the
    // retained ones wait for their commit before PUBACK while the others do not.
    const n = 200;
    await Promise.all(
      Array.from({ length: n }, (_, i) => pub.publishAsync('order/t', String(i), { qos: 1, retain: i % 3 === 0 })),
    );
    const expected = Array.from({ length: n }, (_, i) => String(i));
    assert.deepEqual(
      (await liveGot.next(n)).map((m) => m.payload.toString()),
      expected,
    );
    assert.deepEqual(
      (await durableGot.next(n)).map((m) => m.payload.toString()),
      expected,
    );
  } finally {
    for (const c of clients) c.end(true);
    await gateway.stop();
  }
});

test('retained and plain messages of different publishers all reach a wildcard subscriber; overlapping subscriptions deliver once', async () => {
  const { gateway, url } = await startGateway(join(tmp.dir, 'dedupe'));
  const clients: MqttClient[] = [];
  try {
    const live = await connect(url, { clientId: 'dd-live' });
    const durable = await connect(url, { clientId: 'dd-durable', clean: false });
    clients.push(live, durable);
    const liveGot = collect(live);
    const durableGot = collect(durable);
    // Overlapping filters: each message matches two of each client's subscriptions (aedes queues
    // one copy per matching filter for the persistent session and clears the second).
    await live.subscribeAsync({ 'dd/#': { qos: 1 }, 'dd/+/x': { qos: 1 } });
    await durable.subscribeAsync({ 'dd/#': { qos: 1 }, 'dd/+/x': { qos: 1 } });
    const a = await connect(url, { clientId: 'dd-a' });
    const b = await connect(url, { clientId: 'dd-b' });
    clients.push(a, b);
    // aedes alone drops a message for a subscriber once a later-numbered one reached it first —
    // which a plain message does while a retained one waits for its commit.
    const n = 100;
    await Promise.all([
      ...Array.from({ length: n }, (_, i) => a.publishAsync(`dd/r${i}/x`, `r${i}`, { qos: 1, retain: true })),
      ...Array.from({ length: n }, (_, i) => b.publishAsync('dd/p/x', `p${i}`, { qos: 1 })),
    ]);
    for (const got of [liveGot, durableGot]) {
      const msgs = (await got.next(2 * n)).map((m) => m.payload.toString());
      assert.equal(new Set(msgs).size, 2 * n);
      // The plain ones keep their order (one publisher, one topic).
      assert.deepEqual(
        msgs.filter((m) => m.startsWith('p')),
        Array.from({ length: n }, (_, i) => `p${i}`),
      );
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(liveGot.messages.length, 2 * n, 'no duplicate deliveries');
    assert.equal(durableGot.messages.length, 2 * n, 'no duplicate deliveries');
    // Nothing left behind in the session's queue: a reconnect gets no redelivery.
    assert.equal(durable.connected, true);
    await durable.endAsync();
    const again = await connect(url, { clientId: 'dd-durable', clean: false });
    clients.push(again);
    const againGot = collect(again);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(againGot.messages.length, 0, 'queued copies left after delivery');
  } finally {
    for (const c of clients) c.end(true);
    await gateway.stop();
  }
});
