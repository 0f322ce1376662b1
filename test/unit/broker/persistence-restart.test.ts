/**
 * SqlitePersistence across a restart: state written by one instance, the DB closed, a new
 * instance on the reopened file sees the same state — compared, operation by operation, with
 * aedes-persistence's memory backend that never restarted (the reference behaviour).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import { SqlitePersistence } from '../../../src/broker/persistence/index.js';
import { TempDbs } from './persistence-helpers.js';

// The subset of the async persistence interface these tests drive (memory and SQLite share it).
interface P {
  setup(broker: { id: string }): Promise<void>;
  storeRetained(packet: object): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): Readable;
  addSubscriptions(client: { id: string }, subs: object[]): Promise<void>;
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>;
  subscriptionsByClient(client: { id: string }): Promise<unknown[]>;
  subscriptionsByTopic(topic: string): Promise<unknown[]>;
  countOffline(): Promise<{ subsCount: number; clientsCount: number }>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void>;
  outgoingUpdate(client: { id: string }, packet: object): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: object): Promise<unknown>;
  outgoingStream(client: { id: string }): Readable;
  incomingStorePacket(client: { id: string }, packet: object): Promise<void>;
  incomingGetPacket(client: { id: string }, packet: object): Promise<unknown>;
  putWill(client: { id: string }, packet: object): Promise<void>;
  getWill(client: { id: string }): Promise<unknown>;
  streamWill(brokers?: Record<string, unknown>): Readable;
  getClientList(topic: string): Readable;
  destroy(): Promise<void>;
}

const require = createRequire(import.meta.url);
const AsyncMemory = require('aedes-persistence/asyncPersistence.js') as new () => P;
const Packet = require('aedes-packet') as new (o: object, broker?: object) => Record<string, unknown>;

const dbs = new TempDbs();
after(() => dbs.cleanup());

const broker = { id: 'gw-broker', counter: 0 };
const RETAINED_TOPICS = ['a', 'a/b', 'a/b/c', '/a', 'a/', '$SYS/uptime', '$SYS/a/b', 'sensors/d1/data', 'b/a', 'x/y/z'];
const PATTERNS = [
  '#',
  '+',
  '+/#',
  '+/+',
  'a/#',
  'a/+',
  '/+',
  '+/',
  '$SYS/#',
  '$SYS/+',
  '+/b/#',
  'a/b/c',
  'nope',
  'a/+/c',
];

async function toArray(stream: Readable): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const x of stream) out.push(x);
  return out;
}

function publish(topic: string, payload: string | Buffer, qos: number, counter: number): Record<string, unknown> {
  return new Packet({
    cmd: 'publish',
    topic,
    payload,
    qos,
    retain: false,
    brokerId: broker.id,
    brokerCounter: counter,
  });
}

/** Writes one of everything the persistence keeps. */
async function populate(p: P): Promise<void> {
  await p.setup(broker);
  for (const [i, topic] of RETAINED_TOPICS.entries()) {
    await p.storeRetained({ cmd: 'publish', topic, payload: Buffer.from(`r${i}`), qos: 1, retain: true });
  }
  // Overwrite keeps the position, clear + re-store moves to the end (Map order).
  await p.storeRetained({ cmd: 'publish', topic: 'a/b', payload: 'text payload', qos: 0, retain: true });
  await p.storeRetained({ cmd: 'publish', topic: 'a', payload: Buffer.alloc(0), qos: 0, retain: true });
  await p.storeRetained({ cmd: 'publish', topic: 'a', payload: Buffer.from('again'), qos: 0, retain: true });
  await p.storeRetained({
    cmd: 'publish',
    topic: 'v5/props',
    payload: Buffer.from('p'),
    qos: 1,
    retain: true,
    properties: { correlationData: Buffer.from('cd'), userProperties: { k: ['v1', 'v2'] }, contentType: 'text/plain' },
  });

  const dev = { id: 'device-1' };
  const other = { id: 'device-10' };
  await p.addSubscriptions(dev, [
    { topic: 'commands/device-1', qos: 1, rh: 0, rap: true, nl: false },
    { topic: 'alerts/#', qos: 2, rh: 0, rap: false, nl: true, subscriptionIdentifier: 7 },
    { topic: 'zero', qos: 0, rh: 0, rap: true, nl: false },
    { topic: 'gone', qos: 1 },
  ]);
  await p.removeSubscriptions(dev, ['gone']);
  await p.addSubscriptions(other, [{ topic: 'alerts/+', qos: 1 }]);

  // Queue for device-1: m1 in flight (packet id 1), m2 PUBREL in place (id 2), m3 and m4 queued.
  const subs = [{ clientId: dev.id }, { clientId: other.id }];
  const m = [1, 2, 3, 4].map((i) => publish('alerts/x', i === 3 ? 'str' : Buffer.from(`m${i}`), i === 2 ? 2 : 1, i));
  for (const pkt of m) await p.outgoingEnqueueCombi(subs, pkt);
  const inflight = new Packet(m[0]!);
  inflight.messageId = 1;
  await p.outgoingUpdate(dev, inflight);
  const qos2 = new Packet(m[1]!);
  qos2.messageId = 2;
  await p.outgoingUpdate(dev, qos2);
  await p.outgoingUpdate(dev, { cmd: 'pubrel', messageId: 2 });
  // device-10 acked its first message.
  const acked = new Packet(m[0]!);
  acked.messageId = 9;
  await p.outgoingUpdate(other, acked);
  await p.outgoingClearMessageId(other, { cmd: 'puback', messageId: 9 });

  await p.incomingStorePacket(dev, {
    cmd: 'publish',
    topic: 'sensors/device-1/data',
    payload: Buffer.from('{}'),
    qos: 2,
    messageId: 77,
  });
  await p.putWill(dev, { topic: 'devices/device-1/status', payload: Buffer.from('offline'), qos: 1, retain: true });
}

/** Everything observable through the interface, as plain values. */
async function observe(p: P): Promise<Record<string, unknown>> {
  const dev = { id: 'device-1' };
  const other = { id: 'device-10' };
  const retained: Record<string, unknown> = {};
  for (const pattern of PATTERNS) retained[pattern] = await toArray(p.createRetainedStreamCombi([pattern]));
  retained.combi = await toArray(p.createRetainedStreamCombi(['a/+', '#', 'a/b']));
  return structuredClone({
    retained,
    subsDev: await p.subscriptionsByClient(dev),
    subsOther: await p.subscriptionsByClient(other),
    byTopic: await p.subscriptionsByTopic('alerts/x'),
    byTopicZero: await p.subscriptionsByTopic('zero'),
    count: await p.countOffline(),
    clientList: await toArray(p.getClientList('alerts/#')),
    outDev: await toArray(p.outgoingStream(dev)),
    outOther: await toArray(p.outgoingStream(other)),
    incoming: await p.incomingGetPacket(dev, { messageId: 77 }),
    will: await p.getWill(dev),
    willsOfDeadBrokers: await toArray(p.streamWill({ 'another-broker': Date.now() })),
  });
}

test('state written before a restart is all there after reopening the database, as the memory backend holds it', async () => {
  const path = dbs.path();
  const db1 = dbs.openDb(path);
  const first = new SqlitePersistence({ db: db1 });
  await populate(first as unknown as P);
  const before = await observe(first as unknown as P);
  await first.destroy();
  db1.close();

  const second = new SqlitePersistence({ db: dbs.openDb(path) }) as unknown as P;
  await second.setup(broker);
  const afterRestart = await observe(second);

  const memory = new AsyncMemory();
  await populate(memory);
  const reference = await observe(memory);

  assert.deepEqual(before, reference, 'same as the memory backend before the restart');
  assert.deepEqual(afterRestart, reference, 'same as the memory backend after the restart');
  // Spot checks, so a regression in both backends would not go unnoticed.
  const out = afterRestart.outDev as Array<Record<string, unknown>>;
  assert.deepEqual(
    out.map((x) => [x.cmd, x.messageId]),
    [
      ['publish', 1],
      ['pubrel', 2],
      ['publish', undefined],
      ['publish', undefined],
    ],
  );
  assert.equal(out[2]!.payload, 'str', 'a string payload stays a string');
  const r = afterRestart.retained as Record<string, Array<{ topic: string }>>;
  assert.deepEqual(r['#']!.length, RETAINED_TOPICS.length + 1);
  assert.equal((afterRestart.count as { subsCount: number }).subsCount, 3);
  await second.destroy();
});

test('the restored queue keeps working: acks clear, updates assign packet ids, new messages append', async () => {
  const path = dbs.path();
  const db1 = dbs.openDb(path);
  await populate(new SqlitePersistence({ db: db1 }) as unknown as P);
  // No destroy(): a resolved write promise means committed, as when the process is killed.
  db1.close();

  const p = new SqlitePersistence({ db: dbs.openDb(path) }) as unknown as P;
  await p.setup(broker);
  const dev = { id: 'device-1' };
  const cleared = (await p.outgoingClearMessageId(dev, { cmd: 'puback', messageId: 1 })) as Record<string, unknown>;
  assert.equal(String(cleared.payload), 'm1');
  const queued = (await toArray(p.outgoingStream(dev))) as Array<Record<string, unknown>>;
  const third = queued[1]!;
  const resend = new Packet(third);
  resend.messageId = 3;
  await p.outgoingUpdate(dev, resend);
  await p.outgoingEnqueueCombi([{ clientId: dev.id }], publish('alerts/y', Buffer.from('m5'), 1, 5));
  const ids = ((await toArray(p.outgoingStream(dev))) as Array<Record<string, unknown>>).map((x) => x.messageId);
  assert.deepEqual(ids, [2, 3, undefined, undefined]);
  await p.destroy();
});

test('a failed commit rejects the writes of its batch and leaves memory consistent with the disk', async () => {
  const db = dbs.openDb();
  const p = new SqlitePersistence({ db });
  await p.setup(broker);
  await p.storeRetained({ cmd: 'publish', topic: 'small', payload: Buffer.from('ok'), qos: 0, retain: true });
  // A real SQLITE_FULL: cap the file at its current size, then write more than a page holds.
  const pages = db.pragma('page_count', { simple: true }) as number;
  db.pragma(`max_page_count = ${pages}`);
  await assert.rejects(
    p.storeRetained({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(256 * 1024, 1), qos: 0, retain: true }),
    (err: Error & { code?: string }) => err.code === 'SQLITE_FULL',
  );
  const topics = ((await toArray(p.createRetainedStream('#'))) as Array<{ topic: string }>).map((x) => x.topic);
  assert.deepEqual(topics, ['small'], 'the rolled-back message is not served from memory');
  assert.equal(p.stats().failedCommits, 1);
  db.pragma('max_page_count = 1073741823');
  await p.storeRetained({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(256 * 1024, 1), qos: 0, retain: true });
  assert.equal(p.stats().retained, 2);
  await p.destroy();
});

test('a full outgoing queue drops the oldest message not in flight and counts it', async () => {
  const p = new SqlitePersistence({ db: dbs.openDb(), maxQueuedPerClient: 3 });
  await p.setup(broker);
  const dev = { id: 'slow' };
  for (let i = 1; i <= 5; i++) await p.outgoingEnqueueCombi([{ clientId: dev.id }], publish('t', `m${i}`, 1, i));
  assert.deepEqual(
    ((await toArray(p.outgoingStream(dev))) as Array<{ payload: string }>).map((x) => x.payload),
    ['m3', 'm4', 'm5'],
  );
  assert.equal(p.stats().droppedOutgoing, 2);
  await p.destroy();
});

test('many writes in one turn share commits, bounded by maxBatchOps, and all reach the disk', async () => {
  const path = dbs.path();
  const db = dbs.openDb(path);
  const p = new SqlitePersistence({ db, maxBatchOps: 50 });
  await p.setup(broker);
  const writes: Array<Promise<void>> = [];
  for (let i = 0; i < 200; i++) {
    writes.push(p.storeRetained({ cmd: 'publish', topic: `t/${i}`, payload: Buffer.from('x'), qos: 0, retain: true }));
  }
  writes.push(
    p.addSubscriptions({ id: 'c' }, [
      { topic: 'a', qos: 1 },
      { topic: 'b', qos: 1 },
    ]),
  );
  await Promise.all(writes);
  const s = p.stats();
  assert.equal(s.committedOps, 202);
  assert.ok(s.commits >= 4 && s.commits <= 5, `200 writes in ${s.commits} commits`);
  db.close();
  const again = new SqlitePersistence({ db: dbs.openDb(path) });
  assert.equal(again.stats().retained, 200);
  assert.equal(again.stats().subscriptions, 2);
});
