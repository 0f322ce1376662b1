import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { HistoryConfigSchema, type HistoryConfig } from '../../src/history/config.js';
import { HistoryStore } from '../../src/history/store.js';
import type { Reading } from '../../src/pipeline/reading.js';
import { openDatabase } from '../../src/store/db.js';

const cfg = (o: Partial<HistoryConfig>) => Value.Default(HistoryConfigSchema, { ...o }) as HistoryConfig;
const r = (deviceId: string, ts: number, v: number): Reading => ({
  deviceId,
  ts,
  values: { v },
  quality: 'good',
  source: 'mqtt',
});

function open(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'egw-history-'));
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  t.after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { db, path: join(dir, 'gateway.db') };
}

test('thinning: at most one kept reading per device per min_interval_s; writes batched per flush', (t) => {
  const { db } = open(t);
  const h = new HistoryStore(db, cfg({ min_interval_s: 10 }));
  // 1,000 readings/s for 30 s from two devices.
  for (let ms = 0; ms < 30_000; ms += 1) h.offer([r('a', 1e12 + ms, ms), r('b', 1e12 + ms, -ms)], ms);
  assert.equal(h.flush(), 6);
  assert.deepEqual(
    h.query('a').map((x) => x.values['v']),
    [0, 10_000, 20_000],
  );
  assert.equal(h.stats.thinned, 60_000 - 6);
  assert.ok(h.stats.bytesWritten < 1000, `${h.stats.bytesWritten} B for 60,000 readings`);
});

test('min_interval_s 0 keeps every reading; the ring keeps the newest max_rows_per_device', (t) => {
  const { db } = open(t);
  const h = new HistoryStore(db, cfg({ min_interval_s: 0, max_rows_per_device: 5 }));
  for (let i = 0; i < 12; i++) {
    h.offer([r('a', 1000 + i, i)], i);
    if (i % 4 === 3) h.flush();
  }
  assert.deepEqual(
    h.query('a', { limit: 100 }).map((x) => x.values['v']),
    [7, 8, 9, 10, 11],
  );
  assert.equal(h.stats.evicted, 7);
  assert.deepEqual(
    h.query('a', { limit: 2 }).map((x) => x.values['v']),
    [10, 11],
  );
  assert.deepEqual(
    h.query('a', { since: 1009 }).map((x) => x.ts),
    [1009, 1010, 1011],
  );
  assert.deepEqual(h.query('nobody'), []);
});

test('unflushed readings are served; age sweep by timestamp; max_devices bounds the set', (t) => {
  const { db, path } = open(t);
  const h = new HistoryStore(db, cfg({ min_interval_s: 0, max_devices: 2, max_age_s: 60 }));
  h.offer([r('a', 0, 1), r('b', 100_000, 2), r('c', 100_000, 3)], 0);
  assert.equal(h.query('a').length, 1, 'waiting reading served before the flush');
  assert.equal(h.stats.overflow, 1);
  h.flush();
  assert.equal(h.sweep(100_000), 1, 'a is older than 60 s');
  assert.deepEqual(h.query('a'), []);
  // The counts survive a reopen.
  const again = new HistoryStore(openDatabase({ path, durability: 'normal' }), cfg({ max_devices: 1 }));
  again.offer([r('z', 1, 1)], 0);
  assert.equal(again.stats.overflow, 1, 'b still counts as a kept device after reopen');
});
