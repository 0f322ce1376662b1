import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../../src/config/load.js';
import { binaryReadingCodec } from '../../../src/queue/codec.js';
import { Outbox, type UplinkMessage } from '../../../src/queue/outbox.js';
import { openDatabase, type Db } from '../../../src/store/db.js';
import type { Reading } from '../../../src/pipeline/reading.js';

const log = pino({ level: 'silent' });

function setup(t: { after(fn: () => void): void }, queueYaml = '') {
  const dir = mkdtempSync(join(tmpdir(), 'egw-outbox-'));
  const config = parseConfig(`version: 1\nqueue:\n  outbox:\n    commit_wait_ms: 2\n${queueYaml}`).queue;
  let clock = 0;
  const dbs: Db[] = [];
  const open = () => {
    const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
    dbs.push(db);
    return { db, outbox: new Outbox({ db, log, config, codec: binaryReadingCodec, now: () => clock }) };
  };
  t.after(() => {
    for (const d of dbs) if (d.open) d.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { open, advance: (ms: number) => (clock += ms), config };
}

const reading = (dev: string, i: number): Reading => ({
  deviceId: dev,
  ts: 1_700_000_000_000 + i,
  values: { i },
  quality: 'good',
  source: 'mqtt',
});

/** Records the claims and commits them at once (the uplink waits for the next group commit). */
function claimNow(outbox: Outbox, msgs: readonly UplinkMessage[]): void {
  let done: Error | undefined | null = null;
  outbox.claim(msgs, (err) => (done = err));
  outbox.flush();
  assert.equal(done, undefined);
}

function takeAll(outbox: Outbox, cls: number): UplinkMessage[] {
  const out: UplinkMessage[] = [];
  for (let m = outbox.peek(cls); m && !('waitMs' in m); m = outbox.peek(cls)) out.push(outbox.take(cls)!);
  return out;
}

test('readings resolve after their group commit and drain as one codec batch per device, FIFO', async (t) => {
  const { open, advance } = setup(t);
  const { db, outbox } = open();
  await Promise.all([0, 1, 2, 3, 4].map((i) => outbox.enqueueReadings([reading('d1', i)], 'sensors/d1/data')));
  await outbox.enqueueReadings([reading('d2', 0)], 'sensors/d2/data');
  // The five calls of d1 waited for the same commit: one row (one codec batch), not five.
  assert.equal((db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n, 2);
  assert.equal(outbox.classStats()[2]!.readings, 6);
  assert.deepEqual(outbox.peek(2), { waitMs: 200 }); // MEDIUM batch window still open
  advance(250);
  const msgs = takeAll(outbox, 2);
  assert.equal(msgs.length, 2);
  assert.equal(msgs[0]!.topic, 'sensors/d1/data');
  assert.deepEqual(
    binaryReadingCodec.decodeRow(msgs[0]!.payload).map((r) => r.values['i']),
    [0, 1, 2, 3, 4],
  );
  assert.equal(msgs[1]!.readings, 1);
  assert.notEqual(msgs[0]!.id, msgs[1]!.id);
  claimNow(outbox, msgs);
  for (const m of msgs) outbox.ack(m, 100);
  outbox.flush();
  assert.equal((db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n, 0);
  const s = outbox.classStats()[2]!;
  assert.equal(s.depth, 0);
  assert.equal(s.sentReadings, 6);
});

test('a claimed batch is restored after a restart with the same id and the same readings', async (t) => {
  const { open, advance } = setup(t);
  const first = open();
  for (let i = 0; i < 10; i++) await first.outbox.enqueueReadings([reading('d1', i)], 'sensors/d1/data');
  advance(1000);
  const [m] = [first.outbox.take(2)!];
  claimNow(first.outbox, [m]);
  first.outbox.close();
  first.db.close(); // as after kill -9: nothing acknowledged
  const again = open();
  await again.outbox.enqueueReadings([reading('d1', 10)], 'sensors/d1/data'); // new row, must not join the old batch
  advance(1000);
  const msgs = takeAll(again.outbox, 2);
  assert.equal(msgs[0]!.id, m.id);
  assert.deepEqual(Buffer.from(msgs[0]!.payload), Buffer.from(m.payload));
  assert.equal(msgs[1]!.readings, 1);
  assert.equal(again.outbox.classStats()[2]!.depth, 11);
});

test('non-reading messages keep their payload, class and content type', async (t) => {
  const { open } = setup(t);
  const { outbox } = open();
  await outbox.enqueue({ topic: 'alerts/press-07', payload: Buffer.from('{"a":1}'), source: 'alert' });
  await outbox.enqueue({ topic: 'inspection/cam1/result', payload: Buffer.from('{}'), labels: ['defective'] });
  await outbox.enqueue({ topic: 'x/y', payload: Buffer.from('z'), priority: 'LOW', contentType: 'text/plain' });
  const crit = takeAll(outbox, 0);
  assert.deepEqual(
    crit.map((m) => m.topic),
    ['alerts/press-07', 'inspection/cam1/result'],
  );
  const low = takeAll(outbox, 3);
  assert.equal(low[0]!.contentType, 'text/plain');
});

test('TTL and max age drop expired rows and count them per class', async (t) => {
  const { open, advance } = setup(t, '  classes:\n    HIGH: { ttl_s: 5 }\n');
  const { outbox } = open();
  await outbox.enqueue({ topic: 'devices/d1/status', payload: Buffer.from('{}') });
  await outbox.enqueue({ topic: 'alerts/a', payload: Buffer.from('{}') });
  advance(6000);
  outbox.sweep();
  assert.equal(outbox.classStats()[1]!.dropped.ttl, 1);
  assert.equal(outbox.classStats()[1]!.depth, 0);
  assert.equal(outbox.classStats()[0]!.depth, 1); // CRITICAL ttl 0 = never
  advance(86_400_000);
  outbox.sweep();
  assert.equal(outbox.classStats()[0]!.dropped.age, 1);
});

test('quota: LOW is evicted first and counted; no CRITICAL row is touched while lower classes have rows', async (t) => {
  const { open } = setup(t, '    max_bytes: 65536\n');
  const { db, outbox } = open();
  const body = Buffer.alloc(400, 1);
  for (let i = 0; i < 40; i++) await outbox.enqueue({ topic: 'alerts/a', payload: body });
  for (let i = 0; i < 60; i++) await outbox.enqueue({ topic: 'm', payload: body, priority: 'MEDIUM' });
  for (let i = 0; i < 200; i++) await outbox.enqueue({ topic: 'history/h', payload: body });
  const s = outbox.classStats();
  assert.equal(s[0]!.depth, 40);
  assert.equal(s[0]!.dropped.quota, 0);
  assert.equal(s[2]!.dropped.quota, 0);
  assert.ok(s[3]!.dropped.quota > 0);
  assert.ok(s.reduce((a, c) => a + c.bytes, 0) <= 65536);
  // the oldest LOW went first
  outbox.flush();
  const oldestLow = db.prepare('SELECT min(seq) AS s FROM outbox WHERE cls = 3').get() as { s: number };
  const newestLow = db.prepare('SELECT max(seq) AS s FROM outbox WHERE cls = 3').get() as { s: number };
  assert.ok(newestLow.s - oldestLow.s < 200);
  // more MEDIUM: the rest of LOW goes, then MEDIUM, CRITICAL still whole
  for (let i = 0; i < 200; i++) await outbox.enqueue({ topic: 'm', payload: body, priority: 'MEDIUM' });
  const s2 = outbox.classStats();
  assert.equal(s2[3]!.depth, 0);
  assert.ok(s2[2]!.dropped.quota > 0);
  assert.equal(s2[0]!.depth, 40);
  // only CRITICAL left over quota: now it is evicted, oldest first
  for (let i = 0; i < 200; i++) await outbox.enqueue({ topic: 'alerts/b', payload: body });
  const s3 = outbox.classStats();
  assert.equal(s3[2]!.depth + s3[1]!.depth + s3[3]!.depth, 0);
  assert.ok(s3[0]!.dropped.quota > 0);
  outbox.flush();
  assert.equal((db.prepare("SELECT count(*) AS n FROM outbox WHERE topic = 'alerts/a'").get() as { n: number }).n, 0);
});

test('disk full: the commit fails, callers are rejected (not acknowledged) and it is counted', async (t) => {
  const { open } = setup(t);
  const { db, outbox } = open();
  await outbox.enqueue({ topic: 'x', payload: Buffer.alloc(10) });
  const pages = (db.pragma('page_count', { simple: true }) as number) + 2;
  db.pragma(`max_page_count = ${pages}`);
  const big = Buffer.alloc(200_000, 7);
  await assert.rejects(
    outbox.enqueue({ topic: 'x', payload: big, priority: 'LOW' }),
    (e: Error & { code?: string }) => e.code === 'EGW_STORE_FULL',
  );
  assert.equal(outbox.classStats()[3]!.dropped.disk_full, 1);
  assert.equal(outbox.classStats()[3]!.depth, 0);
  assert.ok(outbox.failing);
  db.pragma('max_page_count = 1073741823');
  await outbox.enqueue({ topic: 'x', payload: big, priority: 'LOW' });
  assert.ok(!outbox.failing);
  assert.equal(outbox.classStats()[3]!.depth, 1);
});

test('a message enqueued with ttlS 0 never expires, also after a requeue (its own TTL, not the class TTL)', async (t) => {
  const { open, advance } = setup(t, '  classes:\n    HIGH: { ttl_s: 5 }\n');
  const { outbox } = open();
  await outbox.enqueue({ topic: 'devices/d1/status', payload: Buffer.from('{}'), ttlS: 0 });
  await outbox.enqueue({ topic: 'devices/d2/status', payload: Buffer.from('{}') }); // class TTL 5 s
  const [keep, expire] = takeAll(outbox, 1);
  // connection lost before the PUBACK: both go back to the front of HIGH
  outbox.requeue(expire!);
  outbox.requeue(keep!);
  advance(6000);
  outbox.sweep();
  const s = outbox.classStats()[1]!;
  // The sweep drops expired messages from the head; the head (ttlS 0) is alive, so both wait.
  assert.equal(s.dropped.ttl, 0, 'the ttlS 0 message is not dropped');
  assert.equal(s.depth, 2);
  assert.equal(outbox.take(1)!.id, keep!.id);
  outbox.sweep();
  assert.equal(outbox.classStats()[1]!.dropped.ttl, 1, 'the class-TTL message behind it expires');
});

test('an explicit ttlS shorter than its class TTL expires after a requeue too', async (t) => {
  const { open, advance } = setup(t);
  const { outbox } = open();
  await outbox.enqueue({ topic: 'alerts/a', payload: Buffer.from('{}'), ttlS: 2 }); // CRITICAL: class TTL 0
  const [m] = takeAll(outbox, 0);
  outbox.requeue(m!);
  advance(3000);
  outbox.sweep();
  assert.equal(outbox.classStats()[0]!.dropped.ttl, 1);
  assert.equal(outbox.classStats()[0]!.depth, 0);
});

test('group commit: inserts, deletes and claims of one wait share one transaction', async (t) => {
  const { open, advance } = setup(t, '  classes:\n    MEDIUM: { batch_window_ms: 0 }\n');
  const { outbox } = open();
  await Promise.all([0, 1, 2].map((i) => outbox.enqueueReadings([reading(`d${i}`, i)], `sensors/d${i}/data`)));
  const before = outbox.counters.commits;
  const msgs = takeAll(outbox, 2);
  assert.equal(msgs.length, 3);
  let claimed = false;
  outbox.claim(msgs, () => (claimed = true));
  for (const m of msgs) outbox.ack(m, 10);
  const next = [3, 4, 5].map((i) => outbox.enqueueReadings([reading('d0', i)], 'sensors/d0/data'));
  advance(1);
  await Promise.all(next);
  assert.ok(claimed);
  assert.equal(outbox.counters.commits - before, 1, 'one transaction for 3 deletes, 3 claims and 3 inserts');
  const s = outbox.classStats()[2]!;
  assert.equal(s.depth, 1); // d0's three calls: one row
  assert.equal(s.readings, 3);
});

test('a call whose readings the codec refuses is rejected alone; the others of its commit are stored', async (t) => {
  const { open } = setup(t);
  const { outbox } = open();
  const bad: Reading = { ...reading('d1', 1), ts: 1.5 }; // not an integer timestamp: EGW_CODEC_ENCODE
  const results = await Promise.allSettled([
    outbox.enqueueReadings([reading('d1', 0)], 'sensors/d1/data'),
    outbox.enqueueReadings([bad], 'sensors/d1/data'),
    outbox.enqueueReadings([reading('d1', 2)], 'sensors/d1/data'),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.equal(outbox.classStats()[2]!.readings, 2);
});
