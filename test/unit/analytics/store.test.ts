import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { AnalyticsConfigSchema, type AnalyticsConfig } from '../../../src/analytics/config.js';
import { RuleEngine } from '../../../src/analytics/engine.js';
import { AnalyticsStore } from '../../../src/analytics/store.js';
import { openDatabase } from '../../../src/store/db.js';

const config = (rules: unknown[]) =>
  Value.Default(AnalyticsConfigSchema, structuredClone({ rules })) as AnalyticsConfig;
const S = 1000;
const reading = (deviceId: string, temp: number) => ({ deviceId, ts: 0, values: { temp } });

test('rule state survives closing the database: a 10-minute duration resumes, not restarts', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-analytics-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'gateway.db');
  const cfg = config([
    { name: 'hot', value: 'temp', when: { above: 80 }, for_s: 600 },
    { name: 'spike', value: 'temp', when: { zscore_above: 3 }, warmup: 5 },
  ]);

  let db = openDatabase({ path, durability: 'normal' });
  let engine = new RuleEngine(cfg);
  let store = new AnalyticsStore(db);
  engine.onReading(reading('boiler', 90), 1000 * S);
  engine.onReading(reading('other', 10), 1100 * S);
  const first = store.save(engine, 1100 * S);
  assert.equal(first.tracks, 4, 'two rules × two devices');
  engine.onReading(reading('boiler', 91), 1300 * S);
  const second = store.save(engine, 1400 * S);
  assert.equal(second.tracks, 2, 'only the changed tracks are written');
  assert.equal(store.save(engine, 1500 * S).tracks, 0, 'nothing changed, no track written');
  db.close();

  // A new process: the monotonic clock starts near zero.
  db = openDatabase({ path, durability: 'normal' });
  store = new AnalyticsStore(db);
  engine = new RuleEngine(cfg);
  engine.restore(store.load()!, 2 * S);
  // At the last save (1500 s) the condition had held 500 s; 100 s more raise it.
  assert.deepEqual(
    engine.tick(101 * S, 0).map((e) => e.kind),
    [],
  );
  assert.deepEqual(
    engine.tick(102 * S, 0).map((e) => e.kind),
    ['raised'],
  );
  db.close();
});

test('state of a changed rule is pruned, a corrupt row loses only its own track', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-analytics-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  t.after(() => db.close());
  const store = new AnalyticsStore(db);
  const engine = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 }, for_s: 60 }]));
  engine.onReading(reading('a', 90), 0);
  engine.onReading(reading('b', 90), 0);
  store.save(engine, 10 * S);
  db.prepare("UPDATE analytics_tracks SET state = '{not json' WHERE device = 'a'").run();
  const loaded = store.load()!;
  assert.deepEqual(
    loaded.tracks.map((x) => x.deviceId),
    ['b'],
  );
  const changed = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 85 }, for_s: 60 }]));
  assert.equal(store.prune(changed.ruleKeys()), 1);
  assert.equal(store.load()!.tracks.length, 0);
});

test('a save that fails writes nothing and leaves its tracks to the next save', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-analytics-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  t.after(() => db.close());
  const store = new AnalyticsStore(db);
  const engine = new RuleEngine(config([{ name: 'hot', value: 'temp', when: { above: 80 }, for_s: 60 }]));
  engine.onReading(reading('a', 90), 0);
  engine.onReading(reading('b', 90), 0);
  // A real SQLite failure inside the transaction (as a full disk would be).
  db.exec("CREATE TRIGGER full BEFORE INSERT ON analytics_tracks BEGIN SELECT RAISE(ABORT, 'disk full'); END");
  assert.throws(() => store.save(engine, 10 * S), /disk full/);
  assert.equal(engine.dirtyCount, 2, 'both tracks are still to be saved');
  db.exec('DROP TRIGGER full');
  assert.equal(store.save(engine, 20 * S).tracks, 2);
  assert.deepEqual(
    store
      .load()!
      .tracks.map((x) => x.deviceId)
      .sort(),
    ['a', 'b'],
  );
  assert.equal(store.save(engine, 30 * S).tracks, 0);
});

test('saveTracksOf writes the tracks of the given alerts only; the others wait for the next save', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-analytics-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  t.after(() => db.close());
  const store = new AnalyticsStore(db);
  const engine = new RuleEngine(
    config([
      { name: 'hot', value: 'temp', when: { above: 80 } },
      { name: 'slow', value: 'temp', when: { above: 80 }, for_s: 600 },
    ]),
  );
  const events = engine.onReading(reading('a', 90), 0);
  assert.deepEqual(
    events.map((e) => e.alert.id),
    ['hot/a/1'],
  );
  const w = store.saveTracksOf(
    engine,
    events.map((e) => e.alert),
    1 * S,
  );
  assert.equal(w.tracks, 1);
  const saved = store.load()!;
  assert.deepEqual(
    saved.tracks.map((x) => [x.deviceId, x.active?.id]),
    [['a', 'hot/a/1']],
  );
  assert.equal(saved.seq, 1, 'the id counter is saved with it: no id is handed out twice');
  assert.equal(engine.dirtyCount, 1, "slow's running duration waits for the periodic save");
  engine.onReading(reading('a', 91), 2 * S); // hot's track changes again after its save
  assert.equal(store.save(engine, 3 * S).tracks, 2);
  assert.equal(engine.dirtyCount, 0);
});
