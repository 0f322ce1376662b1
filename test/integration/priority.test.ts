import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { messageCost } from '../../src/queue/bandwidth.js';
import { binaryReadingCodec } from '../../src/queue/codec.js';
import { Outbox } from '../../src/queue/outbox.js';
import { outboxPort } from '../../src/queue/port.js';
import { openDatabase } from '../../src/store/db.js';
import { Uplink } from '../../src/uplink/uplink.js';
import { Cloud, CloudSubscriber } from './uplink-cloud.js';

const CLASSES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'] as const;
const SHARES = [30, 40, 20, 10];

async function rig(t: { after(fn: () => Promise<void>): void }, cloud: Cloud) {
  const dir = mkdtempSync(join(tmpdir(), 'egw-prio-'));
  const config = parseConfig(
    `version: 1\ngateway: { id: gw-p }\nuplink: { url: ${cloud.url}, reconnect: { min_ms: 50, max_ms: 200 } }\nqueue:\n  bandwidth: { limit_kbps: 64 }\n  outbox: { commit_wait_ms: 2 }\n`,
  );
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const log = pino({ level: 'silent' });
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
  const uplink = new Uplink({
    config: config.uplink,
    queue: config.queue,
    gatewayId: 'gw-p',
    outbox: outboxPort(outbox),
    log,
  });
  t.after(async () => {
    await uplink.stop();
    outbox.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { outbox, uplink, idLength: outbox.idLength };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

test('64 kbit/s cap, 100,000 LOW queued: 100 CRITICAL alarms are delivered with p99 ≤ 1 s', async (t) => {
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  t.after(async () => (await sub.close(), await cloud.close()));
  const { outbox, uplink } = await rig(t, cloud);
  const body = Buffer.alloc(60, 0x61);
  const lows: Promise<void>[] = [];
  for (let i = 0; i < 100000; i++) lows.push(outbox.enqueue({ topic: `history/dev-${i % 10}`, payload: body }));
  await Promise.all(lows);
  await uplink.start();
  await sub.waitFor(() => sub.messages.length > 50, 10000); // LOW is flowing, the link is saturated
  const sentAt = new Map<string, number>();
  for (let i = 0; i < 100; i++) {
    const topic = `alerts/alarm-${i}`;
    sentAt.set(`edge/gw-p/${topic}`, performance.now());
    await outbox.enqueue({ topic, payload: Buffer.from(JSON.stringify({ alarm: i, level: 'high' })) });
    await new Promise((r) => setTimeout(r, 50));
  }
  await sub.waitFor(() => sub.messages.filter((m) => m.topic.startsWith('edge/gw-p/alerts/')).length === 100, 20000);
  const lat = sub.messages
    .filter((m) => m.topic.startsWith('edge/gw-p/alerts/'))
    .map((m) => m.at - sentAt.get(m.topic)!)
    .sort((a, b) => a - b);
  const p50 = pct(lat, 50);
  const p99 = pct(lat, 99);
  t.diagnostic(
    `CRITICAL latency under a LOW flood at 64 kbit/s: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${lat[lat.length - 1]!.toFixed(1)} ms; LOW still queued ${outbox.classStats()[3]!.depth}`,
  );
  assert.ok(p99 <= 1000, `p99 ${p99} ms`);
  assert.ok(outbox.classStats()[3]!.depth > 90000, 'the LOW backlog was still there');
});

test('64 kbit/s cap, all four classes saturated: delivered bytes per class within ±5 % of the shares', async (t) => {
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  t.after(async () => (await sub.close(), await cloud.close()));
  const { outbox, uplink, idLength } = await rig(t, cloud);
  const body = Buffer.alloc(40, 0x62);
  const all: Promise<void>[] = [];
  for (let i = 0; i < 3000; i++)
    for (const p of CLASSES) all.push(outbox.enqueue({ topic: `bulk/${p}`, payload: body, priority: p }));
  await Promise.all(all);
  await uplink.start();
  await sub.waitFor(() => sub.messages.length > 0, 10000);
  const t0 = sub.messages[0]!.at;
  // Skip the first 3 s (CRITICAL's initial policer burst), then measure 10 s.
  await sub.waitFor(() => performance.now() - t0 > 13000, 20000);
  const bytes = [0, 0, 0, 0];
  for (const m of sub.messages) {
    if (m.at - t0 < 3000 || m.at - t0 > 13000) continue;
    const cls = CLASSES.indexOf(m.topic.split('/').pop() as (typeof CLASSES)[number]);
    bytes[cls]! += messageCost(Buffer.byteLength(m.topic), idLength, 'application/json'.length, m.payload.length, 60);
  }
  const total = bytes.reduce((a, b) => a + b, 0);
  const shares = bytes.map((b) => (b / total) * 100);
  t.diagnostic(
    `delivered share % CRITICAL/HIGH/MEDIUM/LOW: ${shares.map((s) => s.toFixed(2)).join(' / ')} (configured 30/40/20/10); ${((total * 8) / 10 / 1000).toFixed(1)} kbit/s`,
  );
  shares.forEach((s, i) =>
    assert.ok(Math.abs(s - SHARES[i]!) / SHARES[i]! <= 0.05, `${CLASSES[i]} got ${s.toFixed(2)} %`),
  );
  assert.ok(total <= 8000 * 10 * 1.05, `cap exceeded: ${total} bytes in 10 s`);
});
