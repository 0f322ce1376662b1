// Uplink benchmarks, each side by side with its reference in one run (figures in docs/queues.md).
// `--ref DIR` names a reference checkout (built, e.g. the base commit in /tmp): the modes marked (*)
// then run the same scenario against DIR/dist as well and print both.
//   node dist/scripts/bench-uplink.js ingest [seconds=10] [publishers=8]
//     (a) MQTT QoS 1 publishers -> gateway (outbox commit before PUBACK) -> mosquitto "cloud", msg/s,
//         vs the same publishers straight into mosquitto.
//   node dist/scripts/bench-uplink.js analytics [seconds=8] [rounds=3] [publishers=8] [--parallel]
//     (a') the ingest of (a) with analytics off and with ANALYTICS_RULES (10 rules on the ingested
//         `seq`), alternated `rounds` times in one run: msg/s, the gateway's CPU µs per reading and
//         the on/off ratio of each pair (docs/analytics.md "Cost"). EGW_BENCH_EXTRA_YAML is appended to both.
//         --ref DIR: each round also runs DIR's build with the rules (refRatio: old vs new, same run).
//         EGW_BENCH_RATE=N: offered load fixed at N msg/s (compare cpuUsPerReading, not msg/s).
//         --parallel: both gateways run at the same time (each with `publishers`), so both see the
//         same load from the rest of the machine.
//   node dist/scripts/bench-uplink.js drain [readings=1000000] [devices=100]
//     (b) drain of a backlog to a local broker, cap off, readings/s (reference: the Mosquitto bridge, ~66,000/s here).
//   node dist/scripts/bench-uplink.js wear [seconds=20] [rate=1000] --ref DIR   (*)
//     (c) bytes written to disk per reading (/proc/<pid>/io write_bytes of the gateway: WAL,
//         checkpoints, everything) at `rate` readings/s under the default config, with the PUBACK
//         latency a probe publisher sees; then the same at 10 readings/s (a quiet site).
//   node dist/scripts/bench-uplink.js stall [readings=1000000] [rate=500] --ref DIR   (*)
//     (d) PUBACK latency of new readings (probe every 20 ms + `rate`/s of load) while a backlog of
//         `readings` one-reading rows drains to the cloud; and the drain time.
//   node dist/scripts/bench-uplink.js reconnect [outageS=60] --ref DIR   (*)
//     (e) default reconnect settings, cloud down `outageS`: time from its return to the first
//         delivery, and full connection attempts while it was down. Both builds run at once.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { GatewayProcess } from '../test/helpers/gateway-process.js';
import { freePort } from '../test/integration/uplink-cloud.js';
import { gatewayYaml } from '../test/integration/uplink-scenarios.js';
import { pino } from 'pino';
import { parseConfig } from '../src/config/load.js';
import { binaryReadingCodec } from '../src/queue/codec.js';
import { Outbox } from '../src/queue/outbox.js';
import { outboxPort } from '../src/queue/port.js';
import { openDatabase } from '../src/store/db.js';
import { Uplink } from '../src/uplink/uplink.js';
import type { Reading } from '../src/pipeline/reading.js';
import { Cloud, CloudSubscriber } from '../test/integration/uplink-cloud.js';
import { ANALYTICS_RULES } from './analytics-rules.js';
import { Publisher, startRig, type Rig } from '../test/integration/uplink-scenarios.js';
import { cpuSeconds } from './proc-stats.js';

const argv = process.argv.slice(2);
const refAt = argv.indexOf('--ref');
const REF = refAt >= 0 ? resolve(argv.splice(refAt, 2)[1]!) : undefined;
const parAt = argv.indexOf('--parallel');
const PARALLEL = parAt >= 0 && argv.splice(parAt, 1).length > 0;
const [mode = 'ingest', a, b] = argv;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function publishFor(url: string, n: number, seconds: number, window = 64, rate = 0): Promise<number> {
  const pubs = Array.from({ length: n }, (_, k) => new Publisher(url, `bench-${k}`, window));
  await sleep(300);
  const runs = pubs.map((p) => p.run(Number.MAX_SAFE_INTEGER, seconds * 1000, rate / n));
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
  // EGW_BENCH_EXTRA_YAML: config sections appended to the gateway's (e.g. analytics rules on vs off).
  const rig = await startRig(process.env['EGW_BENCH_EXTRA_YAML'] ?? '');
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

/** /proc/<pid>/stat utime + stime in µs. */
const cpuUs = (pid: number): number => cpuSeconds(pid) * 1e6;

async function analyticsAb(): Promise<void> {
  const seconds = Number(a ?? 8);
  const rounds = Number(b ?? 3);
  const n = Number(argv[3] ?? 8);
  const extra = process.env['EGW_BENCH_EXTRA_YAML'] ?? '';
  const rules = ANALYTICS_RULES.slice(0, Number(process.env['EGW_BENCH_RULES'] ?? ANALYTICS_RULES.length));
  const configs = {
    off: `analytics: { enabled: false }\n${extra}`,
    // EGW_BENCH_RULES=N: the first N rules only (0: the module's plumbing without a rule).
    on: `analytics:\n  enabled: true\n  rules:${rules.length ? '\n' : ' []\n'}${rules.map((r) => `    - ${r}\n`).join('')}${extra}`,
  };
  type Run = { msgPerS: number; cpuUsPerReading: number; alerts: number };
  const start = async (yaml: string) => {
    const rig = await startRig(yaml);
    await sleep(500);
    return rig;
  };
  const load = async (rig: Rig) => {
    const pid = rig.gateway.child.pid!;
    const c0 = cpuUs(pid);
    // EGW_BENCH_RATE: a fixed offered load (msg/s in all) instead of as fast as acknowledged; the
    // gateway's CPU per reading then compares the same work, batched the same way.
    const rate = Number(process.env['EGW_BENCH_RATE'] ?? 0);
    const acked = await publishFor(`mqtt://127.0.0.1:${rig.brokerPort}`, n, seconds, 64, rate);
    await rig.sub.waitFor(() => rig.sub.readings().length >= acked, 120000);
    return { acked, cpu: cpuUs(pid) - c0 };
  };
  const finish = async (rig: Rig, { acked, cpu }: { acked: number; cpu: number }): Promise<Run> => {
    const alerts = rig.gateway.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('alert ')).length;
    if (process.env['EGW_BENCH_GC']) {
      // EGW_GATEWAY_NODE_FLAGS="--trace-gc-nvp": sums of the scavenges' fields, per reading
      const gc = rig.gateway.logs.filter((l) => l.level === 'raw' && /gc=s /.test(l.msg));
      const sum = (k: string) =>
        gc.reduce((s, l) => s + Number(new RegExp(`\\b${k}=([\\d.]+)`).exec(l.msg)?.[1] ?? 0), 0);
      console.error(
        JSON.stringify({
          scavenges: gc.length,
          pauseMsPerKReading: +((sum('pause') / acked) * 1000).toFixed(3),
          promotedBPerReading: +(sum('promoted') / acked).toFixed(1),
          allocatedBPerReading: +(sum('allocated') / acked).toFixed(1),
        }),
      );
    }
    if (process.env['EGW_BENCH_DEOPT']) {
      // EGW_GATEWAY_NODE_FLAGS="--trace-deopt": bailouts per function (a deopt loop shows as hundreds)
      const by = new Map<string, number>();
      for (const l of rig.gateway.logs) {
        const m =
          l.level === 'raw' ? /bailout \(kind: ([^,]+), reason: ([^)]*)\).*<JSFunction ([^ >]*)/.exec(l.msg) : null;
        if (m) by.set(`${m[3]} ${m[2]}`, (by.get(`${m[3]} ${m[2]}`) ?? 0) + 1);
      }
      console.error(JSON.stringify([...by].sort((x, y) => y[1] - x[1]).slice(0, 12)));
    }
    await rig.gateway.stop('SIGTERM'); // graceful: a --cpu-prof in EGW_GATEWAY_NODE_FLAGS gets written
    await rig.close();
    return { msgPerS: Math.round(acked / seconds), cpuUsPerReading: +(cpu / acked).toFixed(1), alerts };
  };
  const once = async (yaml: string, root?: string) => {
    const before = process.env['EGW_GATEWAY_MAIN'];
    if (root) useBuild(root);
    const rig = await start(yaml);
    if (root) process.env['EGW_GATEWAY_MAIN'] = before ?? '';
    return finish(rig, await load(rig));
  };
  /** --parallel: both gateways at once, each with its own publishers, so both see the same machine. */
  const both = async (): Promise<Record<'off' | 'on', Run>> => {
    const off = await start(configs.off);
    const on = await start(configs.on);
    const [lOff, lOn] = await Promise.all([load(off), load(on)]);
    return { off: await finish(off, lOff), on: await finish(on, lOn) };
  };
  const pairs: Record<string, unknown>[] = [];
  for (let i = 0; i < rounds; i++) {
    // Alternate which goes first, so a drift in the machine's load does not favour one side.
    // --ref DIR: the reference build with the same rules runs in the same round (old vs new).
    const kinds = REF ? (['off', 'on', 'onRef'] as const) : (['off', 'on'] as const);
    const order = kinds.map((_, k) => kinds[(k + i) % kinds.length]!);
    const res: Record<string, Run> = PARALLEL ? await both() : {};
    if (!PARALLEL)
      for (const k of order)
        res[k] = await once(k === 'off' ? configs.off : configs.on, k === 'onRef' ? REF : undefined);
    const pair: Record<string, unknown> = {
      off: res['off']!,
      on: res['on']!,
      ratio: +(res['on']!.msgPerS / res['off']!.msgPerS).toFixed(3),
      cpuRatio: +(res['on']!.cpuUsPerReading / res['off']!.cpuUsPerReading).toFixed(3),
    };
    if (res['onRef']) {
      pair['onRef'] = res['onRef'];
      pair['refRatio'] = +(res['onRef'].msgPerS / res['off']!.msgPerS).toFixed(3);
    }
    console.error(JSON.stringify(pair));
    pairs.push(pair);
  }
  const median = (k: string) => {
    const xs = pairs.map((p) => p[k] as number).sort((x, y) => x - y);
    return xs.length ? xs[Math.floor(xs.length / 2)] : undefined;
  };
  console.log(
    JSON.stringify({
      bench: 'analytics-ingest',
      publishers: n,
      seconds,
      parallel: PARALLEL,
      rules: rules.length,
      pairs,
      ratioMedian: median('ratio'),
      cpuRatioMedian: median('cpuRatio'),
      ...(REF ? { refRatioMedian: median('refRatio') } : {}),
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
  // The backlog: one row per reading (readings that each came alone: the most rows to drain).
  const tb = performance.now();
  await prefill(resolve(fileURLToPath(new URL('../..', import.meta.url))), dir, total, devices);
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const log = pino({ level: 'warn' });
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
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

/** The builds to compare: the reference (when --ref) and this one, with their gateway entry points and modules. */
function builds(): { name: string; root: string }[] {
  const here = resolve(fileURLToPath(new URL('../..', import.meta.url)));
  return [...(REF ? [{ name: 'reference', root: REF }] : []), { name: 'this', root: here }];
}

function useBuild(root: string): void {
  process.env['EGW_GATEWAY_MAIN'] = join(root, 'dist/src/main.js');
}

function pct(sorted: number[], q: number): number {
  return +(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? NaN).toFixed(1);
}

/** Publishes one QoS 1 reading every `everyMs` while `on()`; returns the PUBACK latencies. */
async function probeLatency(url: string, everyMs: number, on: () => boolean): Promise<number[]> {
  const probe = new Publisher(url, `probe`, 1);
  const lat: number[] = [];
  await sleep(300);
  while (on()) {
    const t = performance.now();
    await probe.client.publishAsync('sensors/probe/data', '{"x":1}', { qos: 1 });
    lat.push(performance.now() - t);
    await sleep(everyMs);
  }
  await probe.close();
  return lat.sort((x, y) => x - y);
}

async function wearOnce(seconds: number, rate: number): Promise<Record<string, number>> {
  // EGW_BENCH_YAML: extra config to try a setting (the reported runs use the default config).
  const rig = await startRig(process.env['EGW_BENCH_YAML'] ?? '');
  const pid = rig.gateway.child.pid!;
  const url = `mqtt://127.0.0.1:${rig.brokerPort}`;
  const pubs = Array.from({ length: 10 }, (_, k) => new Publisher(url, `wear-${k}`, 64));
  await sleep(1000);
  const w0 = writeBytes(pid);
  let probing = true;
  const probeRun = probeLatency(url, 50, () => probing);
  await Promise.all(pubs.map((p) => p.run(Number.MAX_SAFE_INTEGER, seconds * 1000, rate / pubs.length)));
  probing = false;
  const lat = await probeRun;
  await sleep(1500); // deletes of the last acknowledged rows
  const w1 = writeBytes(pid);
  const readings = pubs.reduce((s, p) => s + p.acked.size, 0) + lat.length;
  await Promise.all(pubs.map((p) => p.close()));
  await rig.close();
  return {
    readings,
    bytesPerReading: Math.round((w1 - w0) / readings),
    bytesPerDayGB: +((((w1 - w0) / seconds) * 86400) / 1e9).toFixed(2),
    pubackP50Ms: pct(lat, 0.5),
    pubackP99Ms: pct(lat, 0.99),
  };
}

async function wear(): Promise<void> {
  const seconds = Number(a ?? 20);
  const rate = Number(b ?? 1000);
  const out: Record<string, unknown>[] = [];
  for (const bl of builds()) {
    useBuild(bl.root);
    out.push({ build: bl.name, ratePerS: rate, ...(await wearOnce(seconds, rate)) });
  }
  for (const bl of builds()) {
    useBuild(bl.root);
    out.push({ build: bl.name, ratePerS: 10, ...(await wearOnce(seconds, 10)) });
  }
  console.log(JSON.stringify({ bench: 'wear', seconds, defaultConfig: true, runs: out }));
}

async function metricsOf(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

/** A backlog of `total` one-reading rows (the worst case: readings that each came alone), written straight into SQLite. */
async function prefill(root: string, dir: string, total: number, devices: number): Promise<void> {
  const { openDatabase: open } = (await import(
    join(root, 'dist/src/store/db.js')
  )) as typeof import('../src/store/db.js');
  const { Outbox: OB } = (await import(
    join(root, 'dist/src/queue/outbox.js')
  )) as typeof import('../src/queue/outbox.js');
  const config = parseConfig('version: 1\n');
  const db = open({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const ob = new OB({ db, log: pino({ level: 'warn' }), config: config.queue, codec: binaryReadingCodec });
  ob.close(); // creates the schema and the uid
  db.close();
  const raw = new Database(join(dir, 'gateway.db'));
  const ins = raw.prepare(
    'INSERT INTO outbox (cls, topic, dev, kind, n, payload, ctype, t_ms, ttl_ms) VALUES (2, ?, ?, 1, 1, ?, NULL, ?, 86400000)',
  );
  raw.transaction(() => {
    for (let k = 0; k < total; k++) {
      const dev = `dev-${k % devices}`;
      const r: Reading = {
        deviceId: dev,
        ts: 1_700_000_000_000 + k,
        values: { temperature: 20 + (k % 100) / 10, seq: k },
        quality: 'good',
        source: 'mqtt',
      };
      ins.run(`sensors/${dev}/data`, dev, binaryReadingCodec.encodeRow([r]), 1 + Math.floor(k / 1000));
    }
  })();
  raw.close();
}

async function stallOnce(root: string, total: number, rate: number): Promise<Record<string, number>> {
  const cloud = await Cloud.create();
  const dir = mkdtempSync(join(tmpdir(), 'egw-stall-'));
  const brokerPort = await freePort();
  await prefill(root, join(dir, 'data'), total, 100);
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(
    configPath,
    // EGW_BENCH_YAML: extra config to try a setting (the reported runs use the default config).
    gatewayYaml(join(dir, 'data'), brokerPort, cloud.url, process.env['EGW_BENCH_YAML'] ?? '').replace(
      'metrics: { enabled: false }',
      'metrics: { enabled: true, port: 0 }',
    ),
  );
  useBuild(root);
  const t0 = performance.now();
  const gw = GatewayProcess.start(configPath);
  try {
    await gw.ready(60000);
    const metricsPort = (await gw.waitForLog((l) => l.msg === 'metrics listening'))['port'] as number;
    const url = `mqtt://127.0.0.1:${brokerPort}`;
    const load = Array.from({ length: 5 }, (_, k) => new Publisher(url, `live-${k}`, 64));
    let draining = true;
    const probeRun = probeLatency(url, 20, () => draining);
    const loadRun = Promise.all(load.map((p) => p.run(Number.MAX_SAFE_INTEGER, 600000, rate / load.length)));
    let drainS = NaN;
    const deadline = performance.now() + 600000;
    while (performance.now() < deadline) {
      await sleep(250);
      const m = await metricsOf(metricsPort);
      const left = m.get('edge_gateway_queue_readings{class="MEDIUM"}') ?? Infinity;
      if (left < rate) {
        drainS = (performance.now() - t0) / 1000;
        break;
      }
    }
    draining = false;
    for (const p of load) p.stop();
    await loadRun;
    const lat = await probeRun;
    await Promise.all(load.map((p) => p.close()));
    return {
      backlog: total,
      drainSFromStart: +drainS.toFixed(2),
      readingsPerS: Math.round(total / drainS),
      probes: lat.length,
      pubackP50Ms: pct(lat, 0.5),
      pubackP99Ms: pct(lat, 0.99),
      pubackMaxMs: pct(lat, 1),
    };
  } finally {
    await gw.stop('SIGKILL');
    await cloud.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function stall(): Promise<void> {
  const total = Number(a ?? 1_000_000);
  const rate = Number(b ?? 500);
  const out: Record<string, unknown>[] = [];
  for (const bl of builds()) out.push({ build: bl.name, ...(await stallOnce(bl.root, total, rate)) });
  console.log(JSON.stringify({ bench: 'stall', liveRatePerS: rate, probeEveryMs: 20, runs: out }));
}

async function reconnectOnce(root: string, outageS: number): Promise<Record<string, number>> {
  const mod = (p: string) => import(join(root, 'dist/src', p));
  const { openDatabase: open } = (await mod('store/db.js')) as typeof import('../src/store/db.js');
  const { Outbox: OB } = (await mod('queue/outbox.js')) as typeof import('../src/queue/outbox.js');
  const { Uplink: UL } = (await mod('uplink/uplink.js')) as typeof import('../src/uplink/uplink.js');
  const { parseConfig: parse } = (await mod('config/load.js')) as typeof import('../src/config/load.js');
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  const dir = mkdtempSync(join(tmpdir(), 'egw-reconnect-'));
  // Default settings except the URL (reconnect: 1 s doubling to 60 s; this build adds probe_ms 2000).
  const config = parse(`version: 1\ngateway: { id: gw-r }\nuplink: { url: ${cloud.url} }\n`);
  const db = open({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const log = pino({ level: 'warn' });
  const outbox = new OB({ db, log, config: config.queue, codec: binaryReadingCodec });
  // Builds with the Priority-keyed port (capability modules) hand the uplink the port; older ones the outbox.
  const port = (
    (await mod('queue/port.js').catch(() => ({}))) as { outboxPort?: typeof import('../src/queue/port.js').outboxPort }
  ).outboxPort;
  const uplink = new UL({
    config: config.uplink,
    queue: config.queue,
    gatewayId: 'gw-r',
    outbox: port ? port(outbox) : (outbox as unknown as import('../src/queue/port.js').OutboxPort),
    log,
  });
  await uplink.start();
  let i = 0;
  const send = () =>
    outbox.enqueueReadings(
      [{ deviceId: 'd1', ts: 1_700_000_000_000 + i, values: { i: i++ }, quality: 'good', source: 'mqtt' }],
      'sensors/d1/data',
    );
  await send();
  await sub.waitFor(() => sub.messages.length > 0, 10000);
  await cloud.stop();
  const counters = uplink.counters as { attempts?: number; probes?: number };
  const a0 = counters.attempts ?? NaN;
  const feeding = setInterval(() => void send(), 1000);
  await sleep(outageS * 1000);
  const attempts = (counters.attempts ?? NaN) - a0;
  const before = sub.messages.length;
  await cloud.start();
  const back = performance.now();
  await sub.waitFor(() => sub.messages.length > before, 120000);
  const first = (performance.now() - back) / 1000;
  clearInterval(feeding);
  await uplink.stop();
  outbox.close();
  db.close();
  await sub.close();
  await cloud.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    outageS,
    firstDeliveryAfterReturnS: +first.toFixed(2),
    fullAttemptsWhileDown: attempts,
    probes: counters.probes ?? 0,
  };
}

async function reconnect(): Promise<void> {
  const outageS = Number(a ?? 60);
  const runs = await Promise.all(
    builds().map(async (bl) => ({ build: bl.name, ...(await reconnectOnce(bl.root, outageS)) })),
  );
  console.log(JSON.stringify({ bench: 'reconnect', runs }));
}

const modes: Record<string, () => Promise<void>> = { ingest, analytics: analyticsAb, drain, wear, stall, reconnect };
await (modes[mode] ?? ingest)();
process.exit(0);
