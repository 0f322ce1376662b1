import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { binaryReadingCodec } from '../../src/queue/codec.js';
import { outboxPort } from '../../src/queue/port.js';
import { Outbox } from '../../src/queue/outbox.js';
import { openDatabase } from '../../src/store/db.js';
import { Uplink } from '../../src/uplink/uplink.js';
import { Cloud, CloudSubscriber } from './uplink-cloud.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rig(t: { after(fn: () => Promise<void> | void): void }, cloud: Cloud, reconnectYaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'egw-reconnect-'));
  const config = parseConfig(
    `version: 1\ngateway: { id: gw-r }\nuplink:\n  url: ${cloud.url}\n  reconnect: ${reconnectYaml}\nqueue: { classes: { MEDIUM: { batch_window_ms: 0 } }, outbox: { commit_wait_ms: 2 } }\n`,
  );
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const log = pino({ level: 'silent' });
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
  const uplink = new Uplink({
    config: config.uplink,
    queue: config.queue,
    gatewayId: 'gw-r',
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
  const send = (i: number) =>
    outbox.enqueueReadings(
      [{ deviceId: 'd1', ts: 1_700_000_000_000 + i, values: { i }, quality: 'good', source: 'mqtt' }],
      'sensors/d1/data',
    );
  return { outbox, uplink, send };
}

/** Cloud down long enough for the backoff to grow to ~8 s, then back: the first delivery after it returns. */
async function outage(probeMs: number, t: { after(fn: () => Promise<void> | void): void }) {
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  t.after(async () => (await sub.close(), await cloud.close()));
  const { uplink, send } = await rig(t, cloud, `{ min_ms: 500, max_ms: 60000, jitter: 0, probe_ms: ${probeMs} }`);
  await send(0);
  await sub.waitFor(() => uplink.isOnline && sub.readings().length === 1, 5000);
  await cloud.stop();
  await sub.waitFor(() => !uplink.isOnline, 5000);
  const attempts0 = uplink.counters.attempts;
  await send(1); // accepted while the cloud is down
  await sleep(6000); // backoff 0.5, 1, 2, 4 s: the next attempt is ~8 s away
  const attemptsDown = uplink.counters.attempts - attempts0;
  await cloud.start();
  const back = performance.now();
  await sub.waitFor(() => sub.readings().length >= 2, 20000);
  return { firstDeliveryS: (performance.now() - back) / 1000, attemptsDown, probes: uplink.counters.probes };
}

test('reconnect: a TCP probe notices the cloud is back within probe_ms; full attempts keep backing off while it is down', async (t) => {
  const r = await outage(300, t);
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.firstDeliveryS < 2, `first delivery ${r.firstDeliveryS} s after the cloud returned`);
  assert.ok(r.attemptsDown <= 5, `${r.attemptsDown} full attempts in 6 s down (backoff)`);
  assert.ok(r.probes > r.attemptsDown, 'probes, not full attempts, watch the cloud');
});

test('reconnect: without probes the backoff decides (the behaviour the probe fixes)', async (t) => {
  const r = await outage(0, t);
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.firstDeliveryS > 0.5, `first delivery ${r.firstDeliveryS} s: waited for the backoff`);
  assert.equal(r.probes, 0);
});

test('reconnectNow: an operator reconnect resets the backoff and connects at once', async (t) => {
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  t.after(async () => (await sub.close(), await cloud.close()));
  const { uplink, send } = await rig(t, cloud, '{ min_ms: 500, max_ms: 60000, jitter: 0, probe_ms: 0 }');
  await sub.waitFor(() => uplink.isOnline, 5000);
  assert.equal(uplink.reconnectNow(), 'online');
  await cloud.stop();
  await sub.waitFor(() => !uplink.isOnline, 5000);
  await send(1);
  await sleep(4000); // next attempt ~4 s away
  await cloud.start();
  const back = performance.now();
  assert.equal(uplink.reconnectNow(), 'connecting');
  await sub.waitFor(() => sub.readings().length >= 1, 5000);
  const s = (performance.now() - back) / 1000;
  t.diagnostic(`delivered ${s.toFixed(2)} s after reconnectNow`);
  assert.ok(s < 1.5);
});
