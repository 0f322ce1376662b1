// Plugin costs, side by side in one run (figures in docs/plugins.md).
//   node dist/scripts/bench-plugins.js hooks [seconds=5] [rate=10000]
//     (a) CPU per reading at `rate` readings/s (pipeline.ingest in batches of 100 every 10 ms, an
//         in-process gateway without broker or outbox) with: no plugin (reference), an inline
//         observe hook, an inline annotate hook, a worker observe hook. Cost of a hook call =
//         (process CPU µs per reading with it) − (without). Worker CPU counts both threads; the
//         gateway thread's share is shown by its event-loop utilisation.
//   node dist/scripts/bench-plugins.js ingest [seconds=5] [publishers=8]
//     (b) MQTT QoS 1 ingest through the gateway process to a mosquitto cloud (scripts/bench-uplink
//         harness): no plugin vs a plugin throwing on every reading + one whose hook never
//         resolves, with the default quarantine threshold (target ≥ 0.95) and with quarantine
//         raised so they stay loaded the whole run (the guard's worst case). Medians of 4
//         interleaved rounds (A B C C B A ...).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseConfig } from '../src/config/load.js';
import { Gateway } from '../src/gateway.js';
import type { Reading } from '../src/pipeline/reading.js';
import { Publisher, startRig } from '../test/integration/uplink-scenarios.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/plugins', import.meta.url));
const [mode = 'hooks', a, b] = process.argv.slice(2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pluginsYaml(entries: string, extra = ''): string {
  if (!entries) return '';
  return `plugins:\n  enabled: true\n  dir: ${JSON.stringify(FIXTURES)}\n  safe_mode: { enabled: false }\n${extra}  plugins:\n${entries}\n`;
}

async function hookRun(label: string, entries: string, seconds: number, rate: number, extra = '') {
  const dir = mkdtempSync(join(tmpdir(), 'egw-bench-pl-'));
  const config = parseConfig(
    `version: 1
gateway: { id: gw-bp, data_dir: ${JSON.stringify(dir)} }
metrics: { enabled: false }
coap: { enabled: false }
broker: { enabled: false }
queue: { enabled: false }
ota: { enabled: false }
${pluginsYaml(entries, extra)}`,
    'bench.yaml',
    {},
  );
  const gw = new Gateway({ config, log: pino({ level: 'warn' }), env: {} });
  await gw.start();
  const batch = 100;
  const perTick = Math.max(1, Math.round(((rate / 1000) * 10) / batch));
  const meta = { topic: 'sensors/bench/data' };
  let sent = 0;
  const tick = async () => {
    for (let k = 0; k < perTick; k++) {
      const rs: Reading[] = [];
      for (let i = 0; i < batch; i++)
        rs.push({
          deviceId: `dev-${i % 50}`,
          ts: Date.now(),
          values: { v: sent + i },
          quality: 'good',
          source: 'mqtt',
        });
      sent += batch;
      await gw.context.pipeline.ingest(rs, meta);
    }
  };
  // Warm-up (JIT), then measure.
  for (let i = 0; i < 50; i++) await tick();
  await sleep(100);
  sent = 0;
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  let next = t0;
  while (performance.now() - t0 < seconds * 1000) {
    await tick();
    next += 10;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await sleep(50);
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const wall = (performance.now() - t0) / 1000;
  await gw.stop();
  rmSync(dir, { recursive: true, force: true });
  return {
    label,
    readingsPerS: Math.round(sent / wall),
    cpuUsPerReading: +((cpu.user + cpu.system) / sent).toFixed(3),
    gatewayThreadElu: +elu.utilization.toFixed(3),
  };
}

async function hooks(): Promise<void> {
  const seconds = Number(a ?? 5);
  const rate = Number(b ?? 10000);
  const runs = [
    await hookRun('none', '', seconds, rate),
    await hookRun('inline observe', '    - { name: noop-observe }', seconds, rate),
    await hookRun('inline annotate', '    - { name: noop-annotate }', seconds, rate),
    await hookRun('worker observe', '    - { name: noop-observe, isolation: worker }', seconds, rate),
    // A plugin throwing in two hooks on every reading and one whose hook never resolves: with the
    // default threshold both are quarantined within the warm-up (their documented state) ...
    await hookRun('faulty, default quarantine', '    - { name: thrower }\n    - { name: hanger }', seconds, rate),
    // ... and the guard's worst case: kept loaded (quarantine threshold raised).
    await hookRun(
      'faulty kept loaded',
      '    - { name: thrower }\n    - { name: hanger }',
      seconds,
      rate,
      '  quarantine_after: 1000000000\n  quarantine_window_s: 86400\n',
    ),
  ];
  const base = runs[0]!.cpuUsPerReading;
  for (const r of runs)
    console.log(JSON.stringify({ bench: 'plugin-hooks', ...r, hookCostUs: +(r.cpuUsPerReading - base).toFixed(3) }));
}

async function publishFor(url: string, n: number, seconds: number): Promise<number> {
  const pubs = Array.from({ length: n }, (_, k) => new Publisher(url, `bench-${k}`, 64));
  await sleep(300);
  await Promise.all(pubs.map((p) => p.run(Number.MAX_SAFE_INTEGER, seconds * 1000)));
  const acked = pubs.reduce((s, p) => s + p.acked.size, 0);
  await Promise.all(pubs.map((p) => p.close()));
  return acked;
}

async function ingestRun(label: string, extra: string, seconds: number, n: number) {
  const rig = await startRig(extra);
  const acked = await publishFor(`mqtt://127.0.0.1:${rig.brokerPort}`, n, seconds);
  await rig.close();
  return { label, msgPerS: Math.round(acked / seconds) };
}

async function ingest(): Promise<void> {
  const seconds = Number(a ?? 5);
  const n = Number(b ?? 8);
  const faulty = '    - { name: thrower }\n    - { name: hanger }';
  const variants: [string, string][] = [
    ['no plugin', ''],
    // Default thresholds: both end quarantined within the first readings (their documented state).
    ['faulty, default quarantine', pluginsYaml(faulty)],
    // Worst case: the guard pays for every throw and every pending promise for the whole run.
    ['faulty, kept loaded', pluginsYaml(faulty, '  quarantine_after: 1000000000\n  quarantine_window_s: 86400\n')],
  ];
  // Interleaved rounds (A B C A B C ...) so drift of the shared machine hits every variant alike.
  const r: { label: string; msgPerS: number }[] = [];
  // Even rounds forwards, odd rounds backwards (A B C C B A ...): a trend of the machine's load
  // favours no variant.
  for (let i = 0; i < 4; i++)
    for (const [label, yaml] of i % 2 ? [...variants].reverse() : variants)
      r.push(await ingestRun(label, yaml, seconds, n));
  const median = (l: string) => {
    const xs = r
      .filter((x) => x.label === l)
      .map((x) => x.msgPerS)
      .sort((p, q) => p - q);
    return (xs[(xs.length - 1) >> 1]! + xs[xs.length >> 1]!) / 2;
  };
  const base = median('no plugin');
  console.log(
    JSON.stringify({
      bench: 'plugin-ingest',
      publishers: n,
      seconds,
      runs: r,
      medianMsgPerS: Object.fromEntries(variants.map(([l]) => [l, median(l)])),
      ratioDefaultQuarantine: +(median('faulty, default quarantine') / base).toFixed(3),
      ratioKeptLoaded: +(median('faulty, kept loaded') / base).toFixed(3),
    }),
  );
}

await ({ hooks, ingest }[mode] ?? hooks)();
