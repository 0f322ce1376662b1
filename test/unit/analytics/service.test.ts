import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Value } from '@sinclair/typebox/value';
import { AnalyticsConfigSchema, type AnalyticsConfig } from '../../../src/analytics/config.js';
import { AnalyticsService } from '../../../src/analytics/service.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import type { PublishRequest, Publisher } from '../../../src/publisher/types.js';
import { openDatabase } from '../../../src/store/db.js';

const config = (rules: unknown[]) =>
  Value.Default(AnalyticsConfigSchema, structuredClone({ rules, persist_interval_s: 1 })) as AnalyticsConfig;

/** Records what the service hands to the publisher (the publisher itself is tested on its own). */
class Recorder implements Publisher {
  readonly sent: PublishRequest[] = [];
  fail = false;
  async publish(req: PublishRequest) {
    if (this.fail) throw new Error('disk full');
    this.sent.push(req);
    return { local: req.local !== false, uplink: req.uplink !== false };
  }
}

function setup(t: { after(fn: () => void): void }, path?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'egw-an-'));
  const db = openDatabase({ path: path ?? join(dir, 'gateway.db'), durability: 'normal' });
  t.after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // The pipeline hands committed readings over a batch at a time (its after-commit sinks).
  const bus = new EventEmitter<{ reading: [readonly Reading[]] }>();
  const clock = { mono: 0, wall: 1_700_000_000_000 };
  const pub = new Recorder();
  const make = (cfg: AnalyticsConfig) =>
    new AnalyticsService({
      config: cfg,
      db,
      publisher: pub,
      log: pino({ level: 'silent' }),
      onAccepted: (fn) => {
        bus.on('reading', fn);
        return () => bus.off('reading', fn);
      },
      monotonic: () => clock.mono,
      wallClock: () => clock.wall,
    });
  const feed = (deviceId: string, values: Reading['values']) =>
    bus.emit('reading', [{ deviceId, ts: clock.wall, values, quality: 'good', source: 'mqtt' }]);
  return { db, bus, clock, pub, make, feed, dir };
}

test('an alert goes to alerts/{device} with the rule priority; on_raise/on_clear commands go to commands/{id} locally', async (t) => {
  const s = setup(t);
  const svc = s.make(
    config([
      {
        name: 'hot',
        value: 'temp',
        when: { above: 80 },
        clear: { below: 75 },
        priority: 'HIGH',
        on_raise: { payload: { write: { heater: false } } },
        on_clear: { device: 'plc-1', payload: { write: { heater: true } } },
      },
    ]),
  );
  await svc.start();
  s.feed('boiler', { temp: 90 });
  s.feed('boiler', { temp: 78 });
  s.feed('boiler', { temp: 70 });
  await svc.stop();
  await new Promise((r) => setImmediate(r));
  const topics = s.pub.sent.map((m) => `${m.topic} ${m.priority ?? '-'} ${m.uplink === false ? 'local' : 'both'}`);
  assert.deepEqual(topics, [
    'alerts/boiler HIGH both',
    'commands/boiler - local',
    'alerts/boiler HIGH both',
    'commands/plc-1 - local',
  ]);
  const raised = JSON.parse(String(s.pub.sent[0]!.payload)) as Record<string, unknown>;
  assert.equal(raised['event'], 'raised');
  assert.equal(raised['rule'], 'hot');
  assert.equal(raised['value'], 90);
  assert.equal(raised['raisedAt'], new Date(1_700_000_000_000).toISOString());
  assert.equal(s.pub.sent[0]!.source, 'alert');
  assert.deepEqual(JSON.parse(String(s.pub.sent[1]!.payload)), { write: { heater: false } });
  assert.equal(svc.view().counters.raised, 1);
});

test('an open alert and a running duration survive a stop/start; acknowledge publishes the transition', async (t) => {
  const s = setup(t);
  const cfg = config([
    { name: 'hot', value: 'temp', when: { above: 80 } },
    { name: 'slow', value: 'temp', when: { above: 80 }, for_s: 600 },
  ]);
  const a = s.make(cfg);
  await a.start();
  s.feed('boiler', { temp: 90 });
  s.clock.mono = 400_000;
  s.feed('boiler', { temp: 91 });
  await a.stop();
  s.pub.sent.length = 0;

  s.clock.mono = 10; // a new process
  const b = s.make(cfg);
  await b.start();
  assert.equal(b.view().active.length, 1);
  const id = b.view().active[0]!.id;
  assert.equal(b.acknowledge(id)?.state, 'acknowledged');
  assert.equal(b.acknowledge('unknown'), undefined);
  s.clock.mono = 10 + 199_000;
  s.feed('boiler', { temp: 92 });
  assert.equal(b.view().active.length, 1, 'slow has held 599 s');
  s.clock.mono = 10 + 200_000;
  s.feed('boiler', { temp: 92 });
  assert.equal(b.view().active.length, 2);
  await b.stop();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    s.pub.sent.map((m) => JSON.parse(String(m.payload)).event),
    ['acknowledged', 'raised'],
  );
});

test('a failing publisher is counted, evaluation goes on', async (t) => {
  const s = setup(t);
  const svc = s.make(config([{ name: 'hot', value: 'temp', when: { above: 80 } }]));
  await svc.start();
  s.pub.fail = true;
  s.feed('a', { temp: 90 });
  s.feed('b', { temp: 90 });
  await new Promise((r) => setImmediate(r));
  assert.equal(svc.view().counters.publishFailed, 2);
  assert.equal(svc.view().active.length, 2);
  await svc.stop();
});

test('accepted batches are evaluated together after the code that handed them over, in order, each at the time it arrived', async (t) => {
  const s = setup(t);
  const svc = s.make(
    config([
      { name: 'slow', value: 'temp', when: { above: 80 }, for_s: 10 },
      { name: 'twice', value: 'temp', when: { above: 80 }, repeat: 2 },
    ]),
  );
  await svc.start();
  const r = (deviceId: string, temp: number): Reading => ({
    deviceId,
    ts: s.clock.wall,
    values: { temp },
    quality: 'good',
    source: 'mqtt',
  });
  // Three batches at three times in one synchronous run (as a group commit resolves its ingests),
  // two devices interleaved within a batch.
  s.bus.emit('reading', [r('a', 90), r('b', 90)]);
  s.clock.mono = 5_000;
  s.bus.emit('reading', [r('b', 70), r('a', 91), r('b', 90)]);
  s.clock.mono = 10_000;
  s.bus.emit('reading', [r('a', 92)]);
  assert.equal(s.pub.sent.length, 0, 'queued, not evaluated inside the sink call');
  await new Promise((res) => setImmediate(res));
  await new Promise((res) => setImmediate(res));
  const raised = s.pub.sent
    .filter((m) => m.topic.startsWith('alerts/'))
    .map((m) => JSON.parse(String(m.payload)) as { rule: string; deviceId: string; value: number });
  // a: 90, 91 → twice raises at 91; slow has held 10 s at 92 (arrival times 0 and 10 s, not the drain's).
  // b: 90, 70, 90 in that order → twice never sees two in a row; slow restarted at 5 s.
  assert.deepEqual(
    raised.map((x) => `${x.rule} ${x.deviceId} ${x.value}`),
    ['twice a 91', 'slow a 92'],
  );
  await svc.stop();
});

test('view, acknowledge and stop first evaluate what is queued', async (t) => {
  const s = setup(t);
  const svc = s.make(config([{ name: 'hot', value: 'temp', when: { above: 80 } }]));
  await svc.start();
  s.feed('boiler', { temp: 90 });
  const [open] = svc.view().active; // still queued: the view evaluates the queue itself
  assert.equal(open?.id, 'hot/boiler/1');
  s.feed('boiler', { temp: 70 });
  assert.equal(svc.acknowledge('hot/boiler/1'), undefined, 'the queued 70 cleared it before the acknowledgement');
  s.feed('boiler', { temp: 95 });
  await svc.stop();
  assert.equal(svc.view().active[0]?.id, 'hot/boiler/2', 'stop evaluated the last reading and saved it');
});

test('a crash between batches: an alert that was published survives with its id; other progress waits for the periodic save', async (t) => {
  const s = setup(t);
  const cfg = Value.Default(
    AnalyticsConfigSchema,
    structuredClone({
      persist_interval_s: 600,
      rules: [
        { name: 'hot', value: 'temp', when: { above: 80 }, clear: { below: 75 } },
        { name: 'slow', value: 'temp', when: { above: 80 }, for_s: 300 },
      ],
    }),
  ) as AnalyticsConfig;
  const a = s.make(cfg);
  await a.start();
  s.feed('boiler', { temp: 90 });
  await new Promise((res) => setImmediate(res));
  assert.equal(s.pub.sent.length, 1, 'raised and handed to the publisher');
  const id = (JSON.parse(String(s.pub.sent[0]!.payload)) as { id: string }).id;
  // The process dies here: no more readings reach it, no stop(), no periodic save (600 s away).
  s.bus.removeAllListeners('reading');

  s.clock.mono = 7; // a new process
  const b = s.make(cfg);
  await b.start();
  assert.deepEqual(
    b.view().active.map((x) => x.id),
    [id],
    'the open alert was saved when it was raised',
  );
  s.clock.mono = 7 + 299_000;
  s.feed('boiler', { temp: 91 });
  assert.equal(b.view().active.length, 1, "slow's 1 s before the crash was not saved: it counts from the restart");
  s.feed('boiler', { temp: 70 });
  s.feed('boiler', { temp: 99 });
  await b.stop();
  await new Promise((res) => setImmediate(res));
  const events = s.pub.sent.slice(1).map((m) => JSON.parse(String(m.payload)) as { event: string; id: string });
  assert.deepEqual(
    events.map((e) => `${e.event} ${e.id}`),
    [`cleared ${id}`, 'raised hot/boiler/2'],
    'the same alert clears after the crash; the next one gets a new id',
  );
  await a.stop(); // the "dead" first instance: only now, to release its timer
});
