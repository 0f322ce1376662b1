// The outbox journal (src/queue/journal.ts): group commits append to outbox.journal and reach
// SQLite only at a spill. Crashes are simulated by copying the data files while the outbox is
// open (what kill -9 leaves: no close, no spill); the kill -9 loop itself is
// test/integration/crash.test.ts (the gateway process uses the journal).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../../src/config/load.js';
import { binaryReadingCodec } from '../../../src/queue/codec.js';
import { Outbox, type UplinkMessage } from '../../../src/queue/outbox.js';
import { openDatabase, type Db } from '../../../src/store/db.js';
import type { Reading } from '../../../src/pipeline/reading.js';

const log = pino({ level: 'silent' });

function setup(t: { after(fn: () => void): void }, queueYaml = '') {
  const root = mkdtempSync(join(tmpdir(), 'egw-journal-'));
  const config = parseConfig(`version: 1\nqueue:\n  outbox:\n    commit_wait_ms: 2\n${queueYaml}`).queue;
  let clock = 0;
  const dbs: Db[] = [];
  const open = (dir = join(root, 'data'), journal = true, spillBytes?: number) => {
    mkdirSync(dir, { recursive: true });
    const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
    dbs.push(db);
    const outbox = new Outbox({
      db,
      log,
      config,
      codec: binaryReadingCodec,
      now: () => clock,
      ...(journal ? { journal: { path: join(dir, 'outbox.journal'), fsync: false, spillBytes } } : {}),
    });
    return { db, outbox, dir };
  };
  /** What kill -9 leaves on disk: a copy of the files as they are now (no close, no spill). */
  const crashCopy = (from: string, to: string) => {
    mkdirSync(to, { recursive: true });
    for (const f of ['gateway.db', 'gateway.db-wal', 'outbox.journal'])
      if (existsSync(join(from, f))) copyFileSync(join(from, f), join(to, f));
  };
  t.after(() => {
    for (const d of dbs) if (d.open) d.close();
    rmSync(root, { recursive: true, force: true });
  });
  return { open, crashCopy, root, advance: (ms: number) => (clock += ms) };
}

const reading = (dev: string, i: number): Reading => ({
  deviceId: dev,
  ts: 1_700_000_000_000 + i,
  values: { i },
  quality: 'good',
  source: 'mqtt',
});

const rowsInSqlite = (db: Db) => (db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;

function takeAll(outbox: Outbox, cls: number): UplinkMessage[] {
  const out: UplinkMessage[] = [];
  for (let m = outbox.peek(cls); m && !('waitMs' in m); m = outbox.peek(cls)) out.push(outbox.take(cls)!);
  return out;
}

function claimNow(outbox: Outbox, msgs: readonly UplinkMessage[]): void {
  let done: Error | undefined | null = null;
  outbox.claim(msgs, (err) => (done = err));
  outbox.flush();
  assert.equal(done, undefined);
}

const values = (m: UplinkMessage) => binaryReadingCodec.decodeRow(m.payload).map((r) => r.values['i']);

test('a group commit appends to the journal only; delivered rows never reach SQLite', async (t) => {
  const { open, advance } = setup(t);
  const { db, outbox, dir } = open();
  const walBefore = existsSync(join(dir, 'gateway.db-wal')) ? statSync(join(dir, 'gateway.db-wal')).size : 0;
  await Promise.all([0, 1, 2].map((i) => outbox.enqueueReadings([reading('d1', i)], 'sensors/d1/data')));
  await outbox.enqueueReadings([reading('d2', 0)], 'sensors/d2/data');
  assert.equal(rowsInSqlite(db), 0);
  assert.ok(statSync(join(dir, 'outbox.journal')).size > 0);
  advance(250);
  const msgs = takeAll(outbox, 2);
  assert.deepEqual(msgs.map(values), [[0, 1, 2], [0]]);
  claimNow(outbox, msgs);
  for (const m of msgs) outbox.ack(m, 100);
  outbox.flush();
  outbox.close();
  assert.equal(rowsInSqlite(db), 0);
  assert.equal((db.prepare('SELECT count(*) AS n FROM outbox_claim').get() as { n: number }).n, 0);
  // Nothing of the readings went through SQLite's WAL (only the high-water mark at close).
  const walAfter = statSync(join(dir, 'gateway.db-wal')).size;
  assert.ok(walAfter - walBefore <= 4 * (1024 + 24), `WAL grew by ${walAfter - walBefore} B`);
  assert.equal(outbox.classStats()[2]!.sentReadings, 4);
});

test('after a crash the journal is replayed: every acknowledged reading is there, claims keep their ids', async (t) => {
  const { open, crashCopy, root, advance } = setup(t);
  const a = open();
  for (let i = 0; i < 10; i++) await a.outbox.enqueueReadings([reading('d1', i)], 'sensors/d1/data');
  await a.outbox.enqueue({ topic: 'alerts/x', payload: Buffer.from('{"a":1}'), source: 'alert' });
  advance(1000);
  const m = a.outbox.take(2)!;
  claimNow(a.outbox, [m]);
  const [alert] = takeAll(a.outbox, 0);
  claimNow(a.outbox, [alert!]);
  a.outbox.ack(alert!, 10);
  a.outbox.flush();
  crashCopy(a.dir, join(root, 'crash'));
  const b = open(join(root, 'crash'));
  assert.equal(rowsInSqlite(b.db), 10); // replayed into SQLite, the delivered alert not
  assert.equal(statSync(join(root, 'crash', 'outbox.journal')).size < 64, true); // a new generation
  await b.outbox.enqueueReadings([reading('d1', 10)], 'sensors/d1/data');
  advance(1000);
  const msgs = takeAll(b.outbox, 2);
  assert.equal(msgs[0]!.id, m.id);
  assert.deepEqual(values(msgs[0]!), values(m));
  assert.deepEqual(values(msgs[1]!), [10]);
  assert.equal(takeAll(b.outbox, 0).length, 0);
  // A seq is never reused: the new row's id is above everything handed out before the crash.
  const seqOf = (id: string) => Number(id.split('-')[1]);
  assert.ok(seqOf(msgs[1]!.id) > seqOf(alert!.id));
});

test('a seq is never reused after rows were acknowledged in the journal and the gateway restarted', async (t) => {
  const { open, crashCopy, root, advance } = setup(t);
  const a = open();
  for (let i = 0; i < 5; i++) await a.outbox.enqueueReadings([reading('d1', i)], 'sensors/d1/data');
  advance(1000);
  const first = takeAll(a.outbox, 2);
  claimNow(a.outbox, first);
  for (const m of first) a.outbox.ack(m, 1);
  a.outbox.flush();
  crashCopy(a.dir, join(root, 'c1')); // crash: the SQLite table never saw these rows
  const b = open(join(root, 'c1'));
  await b.outbox.enqueueReadings([reading('d1', 99)], 'sensors/d1/data');
  advance(1000);
  const [m] = takeAll(b.outbox, 2);
  assert.notEqual(m!.id, first[0]!.id);
  assert.ok(Number(m!.id.split('-')[1]) > Number(first[0]!.id.split('-')[1]));
  claimNow(b.outbox, [m!]);
  b.outbox.close(); // clean stop: the high-water mark is in SQLite too
  const c = open(join(root, 'c1'));
  await c.outbox.enqueueReadings([reading('d1', 100)], 'sensors/d1/data');
  advance(1000);
  const again = takeAll(c.outbox, 2);
  assert.equal(again[0]!.id, m!.id); // the unacknowledged row, same id
  assert.ok(Number(again[1]!.id.split('-')[1]) > Number(m!.id.split('-')[1]));
});

test('a torn or corrupt tail ends the log: earlier records are kept, later appends work', async (t) => {
  const { open, crashCopy, root, advance } = setup(t);
  const a = open();
  for (let i = 0; i < 3; i++) await a.outbox.enqueueReadings([reading('d1', i)], 'sensors/d1/data');
  const good = statSync(join(a.dir, 'outbox.journal')).size;
  await a.outbox.enqueueReadings([reading('d1', 3)], 'sensors/d1/data');
  const cases: [string, (p: string) => void][] = [
    ['torn record', (p) => truncateSync(p, statSync(p).size - 3)],
    [
      'flipped byte',
      (p) => {
        const b = readFileSync(p);
        b[b.length - 2]! ^= 0xff;
        writeFileSync(p, b);
      },
    ],
    ['huge length', (p) => appendFileSync(p, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 1, 2, 3]))],
    ['zeros', (p) => appendFileSync(p, Buffer.alloc(4096))],
    [
      'garbage record with a valid CRC-less length',
      (p) => appendFileSync(p, Buffer.from([4, 0, 0, 0, 9, 9, 9, 9, 2, 0, 0, 0])),
    ],
  ];
  for (const [name, damage] of cases) {
    const dir = join(root, name.replace(/\W+/g, '-'));
    crashCopy(a.dir, dir);
    damage(join(dir, 'outbox.journal'));
    const b = open(dir);
    const n = rowsInSqlite(b.db);
    if (name === 'torn record' || name === 'flipped byte') assert.equal(n, 3, name);
    else assert.equal(n, 4, name);
    await b.outbox.enqueueReadings([reading('d1', 50)], 'sensors/d1/data');
    b.outbox.close();
    const c = open(dir);
    assert.equal(rowsInSqlite(c.db), n + 1, name);
    advance(1000);
    assert.equal(
      takeAll(c.outbox, 2).reduce((s, m) => s + m.readings, 0),
      n + 1,
      name,
    );
  }
  assert.ok(good > 0);
});

test('a journal that is not one (no header) is ignored, and an empty file is a fresh journal', async (t) => {
  const { open, root } = setup(t);
  const dir = join(root, 'foreign');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'outbox.journal'), 'not a journal at all\n'.repeat(100));
  const a = open(dir);
  assert.equal(rowsInSqlite(a.db), 0);
  await a.outbox.enqueueReadings([reading('d1', 0)], 'sensors/d1/data');
  a.outbox.close();
  const b = open(dir);
  assert.equal(b.outbox.classStats()[2]!.readings, 1);
});

test('a data dir written without the journal (the previous format) opens and drains without loss', async (t) => {
  const { open, advance } = setup(t);
  // The previous code path: every group commit a SQLite transaction (OutboxStore.commit, AUTOINCREMENT seqs).
  const old = open(undefined, false);
  for (let i = 0; i < 20; i++) await old.outbox.enqueueReadings([reading(`d${i % 3}`, i)], `sensors/d${i % 3}/data`);
  await old.outbox.enqueue({ topic: 'alerts/a', payload: Buffer.from('{}'), source: 'alert' });
  advance(1000);
  const claimed = old.outbox.take(2)!;
  claimNow(old.outbox, [claimed]);
  old.db.close(); // as after a crash of the old build
  const now = open();
  await now.outbox.enqueueReadings([reading('d0', 100)], 'sensors/d0/data');
  advance(1000);
  const msgs = [...takeAll(now.outbox, 0), ...takeAll(now.outbox, 2)];
  assert.equal(msgs.find((m) => m.claim?.first_seq === claimed.claim!.first_seq)?.id, claimed.id);
  const all = msgs.flatMap((m) => (m.contentType === 'application/json' ? ['alert'] : values(m)));
  assert.equal(all.length, 22);
  claimNow(now.outbox, msgs);
  for (const m of msgs) now.outbox.ack(m, 1);
  now.outbox.flush();
  // Acks of rows in SQLite delete them there at once (no spill; a draining backlog needs none).
  assert.equal(rowsInSqlite(now.db), 0);
  assert.equal(now.outbox.journalCounters!.spills, 0);
  now.outbox.close();
  assert.equal(rowsInSqlite(now.db), 0);
  // New seqs continue above the old AUTOINCREMENT ones (no id reused).
  const newest = msgs.find((m) => m.topic === 'sensors/d0/data' && values(m).includes(100))!;
  assert.ok(newest.seqs[0]! > 21);
});

test('the journal spills into SQLite at its size bound', async (t) => {
  const { open, advance } = setup(t);
  const a = open(undefined, true, 2048);
  for (let i = 0; i < 60; i++) await a.outbox.enqueueReadings([reading(`d${i % 7}`, i)], `sensors/d${i % 7}/data`);
  assert.ok(a.outbox.journalCounters!.spills >= 1, JSON.stringify(a.outbox.journalCounters));
  assert.ok(rowsInSqlite(a.db) > 0);
  advance(1000);
  const msgs = takeAll(a.outbox, 2);
  assert.equal(
    msgs.reduce((s, m) => s + m.readings, 0),
    60,
  );
  claimNow(a.outbox, msgs);
  for (const m of msgs) a.outbox.ack(m, 1);
  a.outbox.close();
  assert.equal(rowsInSqlite(a.db), 0);
});

test('replay restores exactly what a clean spill writes (strings first used in one record, claims, content types)', async (t) => {
  const { open, crashCopy, root, advance } = setup(t);
  const a = open();
  const dump = (db: Db) => ({
    rows: db
      .prepare('SELECT seq, cls, topic, dev, kind, n, hex(payload) AS p, ctype, t_ms, ttl_ms FROM outbox ORDER BY seq')
      .all(),
    claims: db.prepare('SELECT * FROM outbox_claim ORDER BY id').all(),
  });
  await Promise.all([
    ...[0, 1, 2].map((i) => a.outbox.enqueueReadings([reading(`dev-${i}`, i)], `sensors/dev-${i}/data`)),
    a.outbox.enqueue({ topic: 'x/y', payload: Buffer.from('z'), priority: 'LOW', contentType: 'text/plain' }),
  ]);
  advance(1000);
  const msgs = takeAll(a.outbox, 2);
  // The claims and new rows of new devices (strings first used) share one record.
  let done: Error | undefined | null = null;
  a.outbox.claim(msgs.slice(0, 2), (err) => (done = err));
  const more = [3, 4].map((i) => a.outbox.enqueueReadings([reading(`dev-${i}`, i)], `sensors/dev-${i}/data`));
  // One call, readings of two new devices on one new topic: the topic is first used twice in one record.
  more.push(a.outbox.enqueueReadings([reading('dev-5', 5), reading('dev-6', 6)], 'sensors/batch/data'));
  a.outbox.flush();
  await Promise.all(more);
  assert.equal(done, undefined);
  a.outbox.ack(msgs[0]!, 1);
  await a.outbox.enqueueReadings([reading('dev-0', 9)], 'sensors/dev-0/data');
  // A TTL in fractions of a ms (ttlS 0.0015) is recorded as a float.
  await a.outbox.enqueue({ topic: 'x/frac', payload: Buffer.from('f'), ttlS: 0.0015 });
  // A later record refers to the strings of that one by number.
  await a.outbox.enqueueReadings([reading('dev-6', 7)], 'sensors/batch/data');
  await a.outbox.enqueueReadings([reading('dev-7', 8)], 'sensors/dev-7/data');
  crashCopy(a.dir, join(root, 'crash'));
  a.outbox.close(); // clean: spilled from memory
  const b = open(join(root, 'crash')); // crash: replayed from the file
  assert.deepEqual(dump(b.db), dump(a.db));
  assert.equal(dump(a.db).rows.length, 11);
  assert.ok(dump(b.db).rows.some((r) => (r as { ttl_ms: number }).ttl_ms === 1.5));
  assert.equal(dump(a.db).claims.length, 1);
});

test('a class holding more rows than memory reads them back from SQLite after a spill', async (t) => {
  const { open, advance } = setup(t);
  const a = open();
  const n = 30_100; // above the 30,000 rows per class held in memory
  await a.outbox.enqueueReadings(
    Array.from({ length: n }, (_, i) => reading(`d${i}`, i)),
    'sensors/many/data',
  );
  advance(1000);
  let readings = 0;
  for (let m = a.outbox.peek(2); m && !('waitMs' in m); m = a.outbox.peek(2)) readings += a.outbox.take(2)!.readings;
  assert.equal(readings, n);
  assert.ok(a.outbox.journalCounters!.spills >= 1);
});

test('a full disk (file size limit): refused commits are not acknowledged, nothing of them is replayed', async (t) => {
  const { open, root, advance } = setup(t);
  const dir = join(root, 'full');
  mkdirSync(dir, { recursive: true });
  const child = fileURLToPath(new URL('../../helpers/journal-full-child.js', import.meta.url));
  // prlimit: every file the child writes is capped at 96 KiB; the journal reaches it after ~23 messages.
  const r = spawnSync('prlimit', [`--fsize=${96 * 1024}`, process.execPath, child, dir], {
    encoding: 'utf8',
    timeout: 60000,
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { acked: number[]; codes: string[]; failing: boolean };
  assert.ok(out.acked.length > 5 && out.codes.length === 5, r.stdout);
  assert.ok(
    out.codes.every((c) => c === 'EGW_STORE_FULL'),
    r.stdout,
  );
  assert.ok(out.failing);
  assert.ok(statSync(join(dir, 'outbox.journal')).size <= 96 * 1024);
  const b = open(dir);
  advance(1000);
  const got = takeAll(b.outbox, 3).map((m) => Buffer.from(m.payload).readUInt32BE(0));
  assert.deepEqual(
    got.sort((x, y) => x - y),
    out.acked,
  );
  // And the journal takes new commits again (no torn bytes left in the way).
  await b.outbox.enqueue({ topic: 'm/after', payload: Buffer.from('x'), priority: 'LOW' });
  b.outbox.close();
  const c = open(dir);
  assert.equal(c.outbox.classStats()[3]!.depth, out.acked.length + 1);
});

test('a data dir written by main before the journal (checked-in fixture) opens and drains without loss', async (t) => {
  const { open, root, advance } = setup(t);
  // test/fixtures/outbox-main-a946ce5/gateway.db: written by main's build (a946ce5): 30 readings of
  // d0/d1/d2 (one row each, seqs 1–30), an alert (31) and a LOW text message (32); d0's readings
  // claimed as 5c2a5e6191be-1 (published, not acknowledged), d1's delivered and deleted.
  const fixture = fileURLToPath(new URL('../../../../test/fixtures/outbox-main-a946ce5/gateway.db', import.meta.url));
  const dir = join(root, 'from-main');
  mkdirSync(dir, { recursive: true });
  copyFileSync(fixture, join(dir, 'gateway.db'));
  const a = open(dir);
  await a.outbox.enqueueReadings([reading('d2', 100)], 'sensors/d2/data');
  advance(1000);
  const crit = takeAll(a.outbox, 0);
  assert.deepEqual(
    crit.map((m) => Buffer.from(m.payload).toString()),
    ['{"alert":1}'],
  );
  const med = takeAll(a.outbox, 2);
  assert.equal(med[0]!.id, '5c2a5e6191be-1'); // the claimed batch, same id, same readings
  assert.deepEqual(
    values(med[0]!),
    Array.from({ length: 10 }, (_, k) => 3 * k),
  );
  assert.deepEqual(med.slice(1).flatMap(values), [...Array.from({ length: 10 }, (_, k) => 3 * k + 2), 100]);
  assert.ok(med.every((m) => m.topic !== 'sensors/d1/data'));
  assert.ok(Math.max(...med.flatMap((m) => m.seqs)) > 32); // the new row: no seq reused
  const low = takeAll(a.outbox, 3);
  assert.deepEqual(
    low.map((m) => [Buffer.from(m.payload).toString(), m.contentType]),
    [['low', 'text/plain']],
  );
  const all = [...crit, ...med, ...low];
  claimNow(a.outbox, all);
  for (const m of all) a.outbox.ack(m, 1);
  a.outbox.close();
  const b = open(dir);
  assert.deepEqual(
    b.outbox.classStats().map((c) => c.depth),
    [0, 0, 0, 0],
  );
  assert.equal(rowsInSqlite(b.db), 0);
});

test('durability full: the journal opened with fsync commits and replays the same', async (t) => {
  const { root, crashCopy, advance } = setup(t);
  const dir = join(root, 'full-sync');
  mkdirSync(dir, { recursive: true });
  const config = parseConfig('version: 1\nqueue:\n  outbox:\n    commit_wait_ms: 1\n').queue;
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'full' });
  t.after(() => db.close());
  const outbox = new Outbox({
    db,
    log,
    config,
    codec: binaryReadingCodec,
    journal: { path: join(dir, 'outbox.journal'), fsync: true },
  });
  for (let i = 0; i < 5; i++) await outbox.enqueueReadings([reading('d1', i)], 'sensors/d1/data');
  assert.equal(outbox.journalCounters!.appends, 6); // the header and one record per commit
  crashCopy(dir, join(root, 'full-sync-crash'));
  const db2 = openDatabase({ path: join(root, 'full-sync-crash', 'gateway.db'), durability: 'full' });
  t.after(() => db2.close());
  const again = new Outbox({
    db: db2,
    log,
    config,
    codec: binaryReadingCodec,
    journal: { path: join(root, 'full-sync-crash', 'outbox.journal'), fsync: true },
  });
  advance(1000);
  assert.equal(again.classStats()[2]!.readings, 5);
  outbox.close();
  again.close();
});
