import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { binaryReadingCodec } from '../../src/queue/codec.js';
import { Outbox } from '../../src/queue/outbox.js';
import { outboxPort } from '../../src/queue/port.js';
import { openDatabase } from '../../src/store/db.js';
import { Uplink } from '../../src/uplink/uplink.js';
import type { Reading } from '../../src/pipeline/reading.js';
import { Cloud, CloudSubscriber } from './uplink-cloud.js';

const reading = (dev: string, i: number): Reading => ({
  deviceId: dev,
  ts: 1_700_000_000_000 + i,
  values: { i },
  quality: 'good',
  source: 'mqtt',
});

async function rig(t: { after(fn: () => Promise<void> | void): void }, yaml: string, cloud: Cloud) {
  const dir = mkdtempSync(join(tmpdir(), 'egw-uplink-'));
  const config = parseConfig(
    `version: 1\ngateway: { id: gw-t }\nuplink:\n  url: ${cloud.url}\n  reconnect: { min_ms: 50, max_ms: 200 }\n${yaml}`,
  );
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const log = pino({ level: 'silent' });
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
  const uplink = new Uplink({
    config: config.uplink,
    queue: config.queue,
    gatewayId: 'gw-t',
    outbox: outboxPort(outbox),
    log,
  });
  await uplink.start();
  t.after(async () => {
    await uplink.stop();
    outbox.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { outbox, uplink, db };
}

test('readings reach the cloud under edge/{gatewayId}/{topic}, batched per device, each message with a unique msg-id', async (t) => {
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  t.after(async () => (await sub.close(), await cloud.close()));
  const { outbox, db } = await rig(t, 'queue:\n  classes:\n    MEDIUM: { batch_window_ms: 100 }\n', cloud);
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) sends.push(outbox.enqueueReadings([reading(`d${i % 4}`, i)], `sensors/d${i % 4}/data`));
  await outbox.enqueue({ topic: 'alerts/d1', payload: Buffer.from('{"alarm":true}') });
  await Promise.all(sends);
  await sub.waitFor(
    () => sub.readings().length === 200 && sub.messages.some((m) => m.topic === 'edge/gw-t/alerts/d1'),
    10000,
  );
  const topics = new Set(sub.messages.map((m) => m.topic));
  assert.ok(topics.has('edge/gw-t/sensors/d0/data'));
  assert.ok(sub.messages.length < 60, `batched: ${sub.messages.length} messages for 200 readings`);
  assert.equal(new Set(sub.messages.map((m) => m.id)).size, sub.messages.length);
  assert.ok(sub.messages.every((m) => m.id.length > 0));
  // Per device, order kept.
  const d0 = sub
    .readings()
    .filter((r) => r.deviceId === 'd0')
    .map((r) => r.values['i']);
  assert.deepEqual(
    d0,
    [...d0].sort((a, b) => Number(a) - Number(b)),
  );
  // Delivered rows are deleted (after the next group commit).
  await sub.waitFor(
    () => (outbox.flush(), (db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n === 0),
    5000,
  );
});

test('cloud down: the uplink goes offline once, keeps everything, and delivers it all after the cloud returns', async (t) => {
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  t.after(async () => (await sub.close(), await cloud.close()));
  const { outbox, uplink } = await rig(t, 'queue:\n  classes:\n    MEDIUM: { batch_window_ms: 0 }\n', cloud);
  let i = 0;
  const feed = async (n: number) => {
    for (let k = 0; k < n; k++, i++) await outbox.enqueueReadings([reading('dev-a', i)], 'sensors/dev-a/data');
  };
  await feed(100);
  await sub.waitFor(() => uplink.isOnline && sub.readings().length === 100, 5000);
  await cloud.stop();
  await feed(300); // accepted while the cloud is down
  await sub.waitFor(() => !uplink.isOnline, 5000);
  assert.equal(outbox.classStats()[2]!.readings > 0, true);
  await cloud.start();
  await sub.waitFor(() => new Set(sub.readings().map((r) => r.values['i'])).size === 400, 15000);
  // Every reading arrived; any duplicate carries the same msg-id (the subscriber dedupes by id).
  const values = sub.readings().map((r) => Number(r.values['i']));
  assert.equal(values.length, 400);
  assert.deepEqual(
    [...new Set(values)].sort((a, b) => a - b),
    [...Array(400).keys()],
  );
});
