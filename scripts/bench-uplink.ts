// Uplink benchmarks, each side by side with its reference in one run (figures in docs/queues.md):
//   node dist/scripts/bench-uplink.js ingest [seconds=10] [publishers=8]
//     (a) MQTT QoS 1 publishers -> gateway (outbox commit before PUBACK) -> mosquitto "cloud", msg/s,
//         vs the same publishers straight into mosquitto.
//   node dist/scripts/bench-uplink.js drain [readings=1000000] [devices=100]
//     (b) drain of a backlog to a local broker, cap off, readings/s (reference: the Mosquitto bridge, ~66,000/s here).
//   node dist/scripts/bench-uplink.js wear [seconds=20] [rate=1000]
//     (c) bytes written to disk per reading (/proc/<pid>/io write_bytes) at `rate` readings/s, for
//         commit_wait_ms 10 / 50 / 200, with the PUBACK latency publishers see.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../src/config/load.js';
import { binaryReadingCodec } from '../src/queue/codec.js';
import { Outbox } from '../src/queue/outbox.js';
import { outboxPort } from '../src/queue/port.js';
import { openDatabase } from '../src/store/db.js';
import { Uplink } from '../src/uplink/uplink.js';
import type { Reading } from '../src/pipeline/reading.js';
import { Cloud, CloudSubscriber } from '../test/integration/uplink-cloud.js';
import { Publisher, startRig } from '../test/integration/uplink-scenarios.js';

const [mode = 'ingest', a, b] = process.argv.slice(2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function publishFor(url: string, n: number, seconds: number, window = 64): Promise<number> {
  const pubs = Array.from({ length: n }, (_, k) => new Publisher(url, `bench-${k}`, window));
  await sleep(300);
  const runs = pubs.map((p) => p.run(Number.MAX_SAFE_INTEGER, seconds * 1000));
  await Promise.all(runs);
  const acked = pubs.reduce((s, p) => s + p.acked.size, 0);
  await Promise.all(pubs.map((p) => p.close()));
  return acked;
}

async function ingest(): Promise<void> {
  const seconds = Number(a ?? 10);
  const n = Number(b ?? 8);
  // Reference: the same publishers into mosquitto alone (a subscriber receives them, as the cloud would).
  const ref = await Cloud.create();
  const refSub = await CloudSubscriber.connect(ref.url, 'sensors/#');
  const refAcked = await publishFor(ref.url, n, seconds);
  await refSub.close();
  await ref.close();
  const rig = await startRig();
  const acked = await publishFor(`mqtt://127.0.0.1:${rig.brokerPort}`, n, seconds);
  const t0 = performance.now();
  await rig.sub.waitFor(() => rig.sub.readings().length >= acked, 120000);
  const drainTail = (performance.now() - t0) / 1000;
  await rig.close();
  const gw = acked / seconds;
  const mq = refAcked / seconds;
  console.log(
    JSON.stringify({
      bench: 'ingest',
      publishers: n,
      seconds,
      mosquittoAloneMsgPerS: Math.round(mq),
      gatewayEndToEndMsgPerS: Math.round(gw),
      ratio: +(gw / mq).toFixed(3),
      deliveredAfterS: +drainTail.toFixed(2),
    }),
  );
}

async function drain(): Promise<void> {
  const total = Number(a ?? 1_000_000);
  const devices = Number(b ?? 100);
  const dir = mkdtempSync(join(tmpdir(), 'egw-drain-'));
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  const config = parseConfig(
    `version: 1\ngateway: { id: gw-b }\nuplink: { url: ${cloud.url} }\nqueue: { outbox: { commit_max_rows: 5000 } }\n`,
  );
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const log = pino({ level: 'warn' });
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
  // The backlog: one row per reading, as single-reading MQTT publishes leave it.
  const tb = performance.now();
  for (let i = 0; i < total; i += 10000) {
    const wait: Promise<void>[] = [];
    for (let k = i; k < Math.min(total, i + 10000); k++) {
      const dev = `dev-${k % devices}`;
      const r: Reading = {
        deviceId: dev,
        ts: 1_700_000_000_000 + k,
        values: { temperature: 20 + (k % 100) / 10, seq: k },
        quality: 'good',
        source: 'mqtt',
      };
      wait.push(outbox.enqueueReadings([r], `sensors/${dev}/data`));
    }
    await Promise.all(wait);
  }
  const buildS = (performance.now() - tb) / 1000;
  const uplink = new Uplink({
    config: { ...config.uplink, inflight_window: 64 },
    queue: config.queue,
    gatewayId: 'gw-b',
    outbox: outboxPort(outbox),
    log,
  });
  const t0 = performance.now();
  await uplink.start();
  await sub.waitFor(() => outbox.classStats().every((c) => c.depth === 0), 600000);
  const s = (performance.now() - t0) / 1000;
  const messages = uplink.counters.acked;
  await uplink.stop();
  outbox.close();
  db.close();
  await sub.close();
  await cloud.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      bench: 'drain',
      readings: total,
      devices,
      backlogBuildS: +buildS.toFixed(1),
      drainS: +s.toFixed(2),
      readingsPerS: Math.round(total / s),
      messages,
      referenceMosquittoBridge: 66000,
    }),
  );
}

function writeBytes(pid: number): number {
  const m = /write_bytes: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

async function wear(): Promise<void> {
  const seconds = Number(a ?? 20);
  const rate = Number(b ?? 1000);
  const out = [];
  for (const wait of [10, 50, 200]) {
    const rig = await startRig(`queue: { outbox: { commit_wait_ms: ${wait} } }`);
    const pid = rig.gateway.child.pid!;
    const pubs = Array.from(
      { length: 10 },
      (_, k) => new Publisher(`mqtt://127.0.0.1:${rig.brokerPort}`, `wear-${k}`, 64),
    );
    await sleep(1000);
    const w0 = writeBytes(pid);
    const lat: number[] = [];
    // Measure PUBACK latency on a side publisher at 1 msg / 50 ms while the load runs.
    const probe = new Publisher(`mqtt://127.0.0.1:${rig.brokerPort}`, `probe`, 1);
    let probing = true;
    const probeRun = (async () => {
      while (probing) {
        const t = performance.now();
        await probe.client.publishAsync('sensors/probe/data', '{"x":1}', { qos: 1 });
        lat.push(performance.now() - t);
        await sleep(50);
      }
    })();
    await Promise.all(pubs.map((p) => p.run(Number.MAX_SAFE_INTEGER, seconds * 1000, rate / pubs.length)));
    probing = false;
    await probeRun;
    await sleep(1500); // deletes of the last acknowledged rows
    const w1 = writeBytes(pid);
    const readings = pubs.reduce((s, p) => s + p.acked.size, 0) + lat.length;
    await Promise.all([...pubs, probe].map((p) => p.close()));
    await rig.close();
    lat.sort((x, y) => x - y);
    out.push({
      commit_wait_ms: wait,
      readings,
      bytesPerReading: Math.round((w1 - w0) / readings),
      pubackP50Ms: +lat[Math.floor(lat.length / 2)]!.toFixed(1),
      pubackP99Ms: +lat[Math.floor(lat.length * 0.99)]!.toFixed(1),
    });
  }
  console.log(JSON.stringify({ bench: 'wear', ratePerS: rate, seconds, runs: out }));
}

await (mode === 'drain' ? drain() : mode === 'wear' ? wear() : ingest());
process.exit(0);
