import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { DeadLettersConfig } from '../../../src/deadletters/config.js';
import { RefusalKeeper } from '../../../src/deadletters/refusals.js';
import { DeadLetterStore, type NewDeadLetter } from '../../../src/deadletters/store.js';
import { DeviceRegistry } from '../../../src/devices/registry.js';
import type { Refusal } from '../../../src/pipeline/pipeline.js';
import type { PublishRequest } from '../../../src/publisher/types.js';
import { openDatabase, type Db } from '../../../src/store/db.js';

const CONFIG: DeadLettersConfig = {
  enabled: true,
  max_rows: 100,
  max_bytes: 1 << 20,
  max_age_s: 3600,
  max_payload_bytes: 1000,
  uplink: false,
};
const silent = pino({ level: 'silent' });

function rig(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'egw-dl-'));
  const path = join(dir, 'gateway.db');
  const dbs: Db[] = [];
  const open = () => {
    const db = openDatabase({ path, durability: 'normal' });
    dbs.push(db);
    return db;
  };
  t.after(() => {
    for (const db of dbs) if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { open };
}

const entry = (i: number, payload: Uint8Array = Buffer.from(`{"bad":${i}`)): NewDeadLetter => ({
  source: 'mqtt',
  deviceId: `d${i % 3}`,
  origin: 'client-1',
  topic: `sensors/d${i % 3}/data`,
  code: 'EGW_INGEST_INVALID',
  reason: 'not JSON',
  accepted: 0,
  payload,
});

describe('dead-letter store (SQLite)', () => {
  it('keeps raw bytes, source, reason and time; adds of one turn share one commit; survives a reopen', async (t) => {
    const { open } = rig(t);
    let now = Date.UTC(2026, 0, 1);
    const db = open();
    const store = new DeadLetterStore({ db, config: CONFIG, log: silent, now: () => now });
    const bin = Buffer.from([0xc1, 0x00, 0xff, 0x0a]);
    await Promise.all([store.add(entry(1)), store.add(entry(2, bin))]);
    assert.deepEqual(store.stats(), { rows: 2, bytes: 12, kept: 2, lost: 0, evicted: 0 });
    const list = store.list();
    assert.equal(list[0]!.preview, 'c100ff0a'); // not printable: hex
    assert.equal(list[1]!.preview, '{"bad":1');
    const one = store.get(list[0]!.id)!;
    assert.deepEqual(one.payload, bin);
    assert.equal(one.at, now);
    assert.equal(one.source, 'mqtt');
    assert.equal(one.topic, 'sensors/d2/data');
    store.close();
    db.close();
    now += 1000;
    const again = new DeadLetterStore({ db: open(), config: CONFIG, log: silent, now: () => now });
    assert.equal(again.stats().rows, 2);
    assert.equal(again.list({ deviceId: 'd1' }).length, 1);
    again.close();
  });

  it('is bounded by rows, bytes and age; long payloads are cut and marked', async (t) => {
    const { open } = rig(t);
    let now = Date.UTC(2026, 0, 1);
    const store = new DeadLetterStore({
      db: open(),
      config: { ...CONFIG, max_rows: 10, max_bytes: 3000 },
      log: silent,
      now: () => now,
    });
    for (let i = 0; i < 25; i++) void store.add(entry(i));
    await store.add(entry(25));
    assert.equal(store.stats().rows, 10);
    assert.deepEqual(
      store.list({ limit: 3 }).map((d) => d.reason),
      ['not JSON', 'not JSON', 'not JSON'],
    );
    assert.equal(store.list({ limit: 100 }).at(-1)!.preview, '{"bad":16');
    // Bytes: each 1000-byte (cut from 5000) payload counts 1000; 3000 bytes hold 2 of them plus the rest.
    await store.add(entry(99, Buffer.alloc(5000, 0x41)));
    const big = store.get(store.list({ limit: 1 })[0]!.id)!;
    assert.equal(big.size, 5000);
    assert.equal(big.truncated, true);
    assert.equal(big.payload.length, 1000);
    await Promise.all([
      store.add(entry(100, Buffer.alloc(1000, 0x42))),
      store.add(entry(101, Buffer.alloc(1000, 0x43))),
    ]);
    assert.ok(store.stats().bytes <= 3000, `bytes ${store.stats().bytes}`);
    // Age: everything older than max_age_s goes at the next sweep.
    now += CONFIG.max_age_s * 1000 + 1;
    await store.add(entry(200));
    store.sweep();
    assert.equal(store.stats().rows, 1);
    store.close();
  });

  it('a flood beyond the write queue is counted as lost, not queued without bound', async (t) => {
    const { open } = rig(t);
    const store = new DeadLetterStore({ db: open(), config: CONFIG, log: silent });
    const all: Promise<void>[] = [];
    for (let i = 0; i < 2500; i++) all.push(store.add(entry(i)));
    await Promise.all(all);
    assert.equal(store.stats().lost, 500);
    assert.equal(store.stats().rows, 100);
    store.close();
  });
});

describe('refusal keeper', () => {
  it('counts per device (count and last error), keeps the dead letter, logs once a minute per device with the count', async (t) => {
    const { open } = rig(t);
    const db = open();
    const devices = new DeviceRegistry(db);
    const store = new DeadLetterStore({ db, config: CONFIG, log: silent });
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = {
      warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }),
    } as unknown as typeof silent;
    let mono = 0;
    const published: PublishRequest[] = [];
    const keeper = new RefusalKeeper({
      store,
      devices,
      log,
      monoClock: () => mono,
      wallClock: () => 1234,
      uplink: true,
      publisher: { publish: async (req) => (published.push(req), { local: false, uplink: true }) },
    });
    const refusal = (deviceId: string, reason: string): Refusal => ({
      source: 'mqtt',
      transport: 'mqtt',
      deviceId,
      origin: deviceId,
      topic: `sensors/${deviceId}/data`,
      payload: Buffer.from('nope'),
      code: 'EGW_INGEST_INVALID',
      reason,
      accepted: 0,
    });
    for (let i = 0; i < 100; i++) await keeper.refuse(refusal('flood', `bad ${i}`));
    await keeper.refuse(refusal('other', 'x'));
    assert.equal(lines.length, 2, 'first refusal of each device is logged at once');
    assert.equal(lines[0]!.obj['refused'], 1);
    mono += 30_000;
    await keeper.refuse(refusal('flood', 'bad 100'));
    assert.equal(lines.length, 2);
    mono += 30_000;
    await keeper.refuse(refusal('flood', 'bad 101'));
    assert.equal(lines.length, 3);
    assert.equal(lines[2]!.obj['refused'], 101);
    assert.equal(lines[2]!.obj['deviceId'], 'flood');
    const d = devices.get('flood')!;
    assert.equal(d.refused, 102);
    assert.equal(d.lastError, 'bad 101');
    assert.equal(d.lastErrorAt, 1234);
    assert.equal(store.stats().rows, 100);
    assert.equal(published.length, 103);
    assert.equal(published[0]!.priority, 'LOW');
    assert.equal(published[0]!.topic, 'deadletters/flood');
    // The registry keeps the counters across a restart.
    devices.close();
    assert.equal(new DeviceRegistry(db).get('flood')!.refused, 102);
    keeper.stop();
    store.close();
  });
});
