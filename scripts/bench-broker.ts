/**
 * MQTT broker benchmark: edge-gateway (aedes + SQLite persistence, the built gateway process) vs
 * Debian's mosquitto, same client harness, one run.
 *
 *   npx tsc -p . && node dist/scripts/bench-broker.js [--seconds 5] [--publishers 10] [--pub-procs 2]
 *   [--compare /path/to/other/built/checkout]  (that gateway instead of mosquitto, same rounds)
 *
 * Load: 10 publishers (mqtt.js, spread over --pub-procs child processes) → 1 subscriber on
 * `bench/#` (its own child process), 100-byte payloads, QoS 0 then QoS 1 (publish and subscribe
 * at the same QoS). Publishers send as fast as the broker takes it: QoS 1 with a window of
 * --window unacknowledged messages per publisher, QoS 0 pausing while the socket buffer is full.
 * The subscriber counts deliveries after a warm-up and measures latency from the send time in the
 * payload (same host clock). Every load process reports its CPU use, so a saturated generator is
 * visible. Also measured: idle RSS of the default config and start → READY ("gateway ready").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { cpuSeconds, rssKb } from './proc-stats.js';

const SELF = new URL(import.meta.url).pathname;
const MAIN = new URL('../src/main.js', import.meta.url).pathname;
/** The V8 flags the gateway runs with in production (systemd unit, npm start): small young generation. */
const NODE_FLAGS = (process.env['EGW_BENCH_NODE_FLAGS'] ?? '--max-semi-space-size=1 --v8-pool-size=1')
  .split(' ')
  .filter(Boolean);
const PAYLOAD = 100;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    port: { type: 'string', default: '0' },
    qos: { type: 'string', default: '1' },
    clients: { type: 'string', default: '5' },
    index: { type: 'string', default: '0' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    publishers: { type: 'string', default: '10' },
    'pub-procs': { type: 'string', default: '2' },
    window: { type: 'string', default: '20' },
    only: { type: 'string', default: '' },
    rounds: { type: 'string', default: '3' },
    // Another built checkout (e.g. the commit before an aedes upgrade, with its own node_modules):
    // run as "reference" in the same rounds instead of mosquitto; idle RSS side by side.
    compare: { type: 'string', default: '' },
  },
});

interface CpuReport {
  role: string;
  cpuPct: number;
}

function cpuReporter(role: string): () => CpuReport {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const c = process.cpuUsage(c0);
    return { role, cpuPct: Math.round(((c.user + c.system) / 1000 / (performance.now() - t0)) * 1000) / 10 };
  };
}

// ---------------------------------------------------------------- publisher process
async function publisherRole(): Promise<void> {
  const port = Number(args.port);
  const qos = Number(args.qos) as 0 | 1;
  const n = Number(args.clients);
  const ms = Number(args.seconds) * 1000 + Number(args.warmup) * 1000;
  const window = Number(args.window);
  const clients = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: `bench-pub-${args.index}-${i}`,
        reconnectPeriod: 0,
        keepalive: 60,
      }),
    ),
  );
  process.send!({ ready: true });
  await new Promise<void>((r) => process.once('message', () => r()));
  const cpu = cpuReporter(`publishers#${args.index}`);
  const end = performance.now() + ms;
  let sent = 0;
  await Promise.all(
    clients.map(async (c, i) => {
      const topic = `bench/${args.index}/${i}`;
      const buf = Buffer.alloc(PAYLOAD, 0x61);
      if (qos === 1) {
        let inflight = 0;
        let wake: (() => void) | undefined;
        while (performance.now() < end) {
          if (inflight >= window) {
            await new Promise<void>((r) => (wake = r));
            continue;
          }
          const b = Buffer.from(buf);
          b.writeDoubleLE(now(), 0);
          inflight++;
          sent++;
          c.publish(topic, b, { qos: 1 }, () => {
            inflight--;
            wake?.();
            wake = undefined;
          });
        }
        while (inflight > 0) await new Promise<void>((r) => (wake = r));
      } else {
        const stream = c.stream;
        while (performance.now() < end) {
          // QoS 0 has no acknowledgement; the socket buffer is the only flow control.
          if (stream.writableLength > 64 * 1024) {
            await new Promise((r) => stream.once('drain', r));
            continue;
          }
          const b = Buffer.from(buf);
          b.writeDoubleLE(now(), 0);
          sent++;
          c.publish(topic, b, { qos: 0 });
          if (sent % 200 === 0) await new Promise((r) => setImmediate(r));
        }
      }
    }),
  );
  const report = cpu();
  await Promise.all(clients.map((c) => c.endAsync()));
  process.send!({ done: true, sent, ...report });
}

// ---------------------------------------------------------------- subscriber process
async function subscriberRole(): Promise<void> {
  const port = Number(args.port);
  const qos = Number(args.qos) as 0 | 1;
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: 'bench-sub',
    reconnectPeriod: 0,
    keepalive: 60,
    clean: true,
  });
  await c.subscribeAsync('bench/#', { qos });
  const lat = new Float64Array(4_000_000);
  let n = 0;
  let counting = false;
  let count = 0;
  let t0 = 0;
  let t1 = 0;
  c.on('message', (_t, payload) => {
    if (!counting) return;
    const l = now() - payload.readDoubleLE(0);
    count++;
    t1 = performance.now();
    if (n < lat.length) lat[n++] = l;
  });
  process.send!({ ready: true });
  let cpu = cpuReporter('subscriber');
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'count') {
      counting = true;
      t0 = performance.now();
      cpu = cpuReporter('subscriber');
    } else if (m.cmd === 'report') {
      const report = cpu();
      const sorted = lat.subarray(0, n).sort();
      const q = (p: number) => (n ? sorted[Math.min(n - 1, Math.floor(p * n))]! : NaN);
      process.send!({ count, seconds: (t1 - t0) / 1000, p50: q(0.5), p99: q(0.99), ...report });
      c.end(true, () => process.exit(0));
    }
  });
}

// ---------------------------------------------------------------- orchestration
interface Child {
  proc: ChildProcess;
  next(): Promise<Record<string, unknown>>;
}

function child(role: string, extra: string[]): Child {
  const proc = spawn(process.execPath, [SELF, '--role', role, ...extra], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const queue: Record<string, unknown>[] = [];
  const waiters: ((m: Record<string, unknown>) => void)[] = [];
  proc.on('message', (m: Record<string, unknown>) => (waiters.length ? waiters.shift()!(m) : queue.push(m)));
  return {
    proc,
    next: () =>
      queue.length
        ? Promise.resolve(queue.shift()!)
        : new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${role} did not answer`)), 120000);
            waiters.push((m) => {
              clearTimeout(timer);
              resolve(m);
            });
          }),
  };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Result {
  broker: string;
  qos: number;
  rate: number;
  p50: number;
  p99: number;
  sent: number;
  delivered: number;
  cpu: CpuReport[];
  brokerCpuPct: number;
}

async function runLoad(broker: string, brokerPid: number, port: number, qos: number): Promise<Result> {
  const seconds = Number(args.seconds);
  const procs = Number(args['pub-procs']);
  const perProc = Math.ceil(Number(args.publishers) / procs);
  const sub = child('sub', ['--port', String(port), '--qos', String(qos)]);
  await sub.next();
  const pubs = Array.from({ length: procs }, (_, i) =>
    child('pub', [
      '--port',
      String(port),
      '--qos',
      String(qos),
      '--clients',
      String(perProc),
      '--index',
      String(i),
      '--seconds',
      String(seconds),
      '--warmup',
      args.warmup!,
      '--window',
      args.window!,
    ]),
  );
  await Promise.all(pubs.map((p) => p.next()));
  for (const p of pubs) p.proc.send({ go: true });
  await sleep(Number(args.warmup) * 1000);
  sub.proc.send({ cmd: 'count' });
  const b0 = cpuSeconds(brokerPid);
  const w0 = performance.now();
  const pubReports = await Promise.all(pubs.map((p) => p.next()));
  const b1 = cpuSeconds(brokerPid);
  const w1 = performance.now();
  await sleep(500); // let in-flight deliveries land
  sub.proc.send({ cmd: 'report' });
  const s = await sub.next();
  const delivered = s['count'] as number;
  return {
    broker,
    qos,
    rate: Math.round(delivered / (s['seconds'] as number)),
    p50: s['p50'] as number,
    p99: s['p99'] as number,
    sent: pubReports.reduce((a, r) => a + (r['sent'] as number), 0),
    delivered,
    cpu: [
      { role: 'subscriber', cpuPct: s['cpuPct'] as number },
      ...pubReports.map((r) => ({ role: r['role'] as string, cpuPct: r['cpuPct'] as number })),
    ],
    brokerCpuPct: Math.round(((b1 - b0) / ((w1 - w0) / 1000)) * 1000) / 10,
  };
}

/** Waits for a child's stdout line matching `pred`, bounded. */
function waitLine(proc: ChildProcess, pred: (line: string) => boolean, timeoutMs = 20000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no ready line')), timeoutMs);
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      if (pred(l)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
}

async function stopProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 10000);
  await exited;
  clearTimeout(t);
}

/** Default config with only ports moved off the well-known ones and a temp data dir. */
function defaultConfigVariant(
  dir: string,
  brokerPort: number,
  root = fileURLToPath(new URL('../../', import.meta.url)),
): string {
  const text = readFileSync(join(root, 'config/gateway.yaml'), 'utf8')
    .replace(/^  data_dir: .*$/m, `  data_dir: ${join(dir, 'data')}`)
    .replace(/^  port: 1883$/m, `  port: ${brokerPort}`)
    .replace(/^  port: 9464$/m, '  port: 0')
    .replace(/^  port: 5683$/m, '  port: 0');
  const file = join(dir, `gateway-${brokerPort}.yaml`);
  writeFileSync(file, text);
  return file;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'egw-bench-broker-'));
  const results: Result[] = [];
  const cleanup: ChildProcess[] = [];
  try {
    // edge-gateway: the default config (persistence on), ports moved.
    const gwPort = await freePort();
    const cfg = defaultConfigVariant(dir, gwPort);
    const t0 = performance.now();
    const gw = spawn(process.execPath, [...NODE_FLAGS, MAIN, '--config', cfg], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanup.push(gw);
    await waitLine(gw, (l) => l.includes('gateway ready'));
    const readyMs = performance.now() - t0;
    await sleep(3000);
    const rssMb = rssKb(gw.pid!) / 1024;
    console.log(`edge-gateway default config: start → READY ${readyMs.toFixed(0)} ms, idle RSS ${rssMb.toFixed(1)} MB`);

    // The broker's own share: same measurement with every other capability switched off.
    {
      const only = join(dir, 'broker-only.yaml');
      writeFileSync(
        only,
        [
          'version: 1',
          `gateway: { data_dir: ${join(dir, 'data-broker-only')} }`,
          `broker: { port: ${await freePort()} }`,
          'metrics: { port: 0 }',
          'coap: { enabled: false }',
          'queue: { enabled: false }',
          'uplink: { enabled: false }',
        ].join('\n'),
      );
      const t1 = performance.now();
      const p = spawn(process.execPath, [...NODE_FLAGS, MAIN, '--config', only], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      cleanup.push(p);
      await waitLine(p, (l) => l.includes('gateway ready'));
      const ms = performance.now() - t1;
      await sleep(3000);
      const rss = rssKb(p.pid!) / 1024;
      console.log(
        `edge-gateway broker + metrics only: start → READY ${ms.toFixed(0)} ms, idle RSS ${rss.toFixed(1)} MB`,
      );
      await stopProc(p);
    }

    // --compare: the reference checkout's gateway on its own default config, started the same way.
    let ref: { proc: ChildProcess; port: number } | undefined;
    if (args.compare) {
      const root = resolve(args.compare);
      const refDir = join(dir, 'reference');
      mkdirSync(refDir);
      const port = await freePort();
      const refCfg = defaultConfigVariant(refDir, port, root);
      const t2 = performance.now();
      const proc = spawn(process.execPath, [...NODE_FLAGS, join(root, 'dist/src/main.js'), '--config', refCfg], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      cleanup.push(proc);
      await waitLine(proc, (l) => l.includes('gateway ready'));
      const ms = performance.now() - t2;
      await sleep(3000);
      const rss = (pid: number) => rssKb(pid) / 1024;
      const [a, b] = [rss(gw.pid!), rss(proc.pid!)];
      console.log(`reference ${root} default config: start → READY ${ms.toFixed(0)} ms, idle RSS ${b.toFixed(1)} MB`);
      console.log(
        `idle RSS, both idle at the same moment: this ${a.toFixed(1)} MB, reference ${b.toFixed(1)} MB, ratio ${(a / b).toFixed(3)}`,
      );
      ref = { proc, port };
    }
    const other = ref ? 'reference' : 'mosquitto';
    const which = args.only ? [args.only] : ['edge-gateway', other];
    const runMosquitto = async (qos: 0 | 1): Promise<Result> => {
      const mqPort = await freePort();
      const conf = join(dir, 'mosquitto.conf');
      writeFileSync(
        conf,
        `listener ${mqPort} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n`,
      );
      const mq = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      cleanup.push(mq);
      await sleep(500);
      const r = await runLoad('mosquitto', mq.pid!, mqPort, qos);
      await stopProc(mq);
      return r;
    };
    // Interleaved rounds with the order alternating: a load burst from elsewhere on this shared
    // machine then hits both brokers alike, and the median ratio is what is reported.
    for (let round = 0; round < Number(args.rounds); round++) {
      for (const qos of [0, 1] as const) {
        const order = round % 2 === 0 ? which : [...which].reverse();
        for (const b of order) {
          results.push(
            b === 'edge-gateway'
              ? await runLoad('edge-gateway', gw.pid!, gwPort, qos)
              : b === 'reference' && ref
                ? await runLoad('reference', ref.proc.pid!, ref.port, qos)
                : await runMosquitto(qos),
          );
        }
      }
    }
    await stopProc(gw);

    console.log(
      `\n${args.publishers} publishers (${args['pub-procs']} processes) → 1 subscriber on bench/#, ${PAYLOAD} B payloads, ${args.seconds} s after ${args.warmup} s warm-up`,
    );
    console.log(
      '| broker | QoS | delivered msg/s | p50 ms | p99 ms | broker CPU % | subscriber CPU % | publisher CPU % |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of results) {
      const pubCpu = r.cpu
        .filter((c) => c.role.startsWith('publishers'))
        .map((c) => c.cpuPct)
        .join(' / ');
      const subCpu = r.cpu.find((c) => c.role === 'subscriber')!.cpuPct;
      console.log(
        `| ${r.broker} | ${r.qos} | ${r.rate} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.brokerCpuPct} | ${subCpu} | ${pubCpu} |`,
      );
    }
    for (const qos of [0, 1]) {
      const g = results.filter((r) => r.broker === 'edge-gateway' && r.qos === qos);
      const m = results.filter((r) => r.broker === other && r.qos === qos);
      if (g.length === 0 || g.length !== m.length) continue;
      const ratios = g.map((r, i) => r.rate / m[i]!.rate).sort((a, b) => a - b);
      const median = ratios[Math.floor(ratios.length / 2)]!;
      console.log(
        `QoS ${qos}: edge-gateway delivers ${(median * 100).toFixed(0)} % of ${other}'s rate (median of ${ratios.length} rounds; range ${(ratios[0]! * 100).toFixed(0)}–${(ratios[ratios.length - 1]! * 100).toFixed(0)} %)`,
      );
    }
  } finally {
    for (const p of cleanup) await stopProc(p);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args.role === 'pub') void publisherRole();
else if (args.role === 'sub') void subscriberRole();
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
