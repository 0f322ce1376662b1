/**
 * Cost of "acknowledged means kept" (docs/broker.md, Persistence): CPU time per delivered QoS 1
 * message of this build vs another build of edge-gateway, same load, alternated in one run.
 *
 *   npx tsc -p . && node dist/scripts/bench-broker-ack.js --compare /path/to/other/checkout [--seconds 3] [--rounds 2]
 *
 * The other checkout must be built too (its dist/test/integration/broker-harness.js is used).
 * Each measurement is one child process: the broker (in-process gateway, broker only, SQLite
 * persistence) and mqtt.js clients — 5 publishers with 20 QoS 1 messages in flight each → 1
 * subscriber on bench/#, 100 B payloads, measured for --seconds after 1 s of warm-up. Modes:
 * plain (clean subscriber), durable (persistent-session subscriber: the PUBACK waits for the
 * queued copy's commit), retained (retained messages: the PUBACK waits for the store). CPU µs per
 * message is reported beside msg/s because on a shared machine the rate mostly measures the load
 * of others.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const SELF = new URL(import.meta.url).pathname;
const HERE = resolve(new URL('../..', import.meta.url).pathname);
const MODES = ['plain', 'durable', 'retained'] as const;
type Mode = (typeof MODES)[number];

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    root: { type: 'string', default: HERE },
    compare: { type: 'string' },
    mode: { type: 'string', default: 'plain' },
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
  },
});

interface Measurement {
  msgs: number;
  rate: number;
  cpuUsPerMsg: number;
}

type Harness = typeof import('../test/integration/broker-harness.js');

async function measure(root: string, mode: Mode, seconds: number): Promise<Measurement> {
  const h = (await import(join(root, 'dist/test/integration/broker-harness.js'))) as Harness;
  const dir = mkdtempSync(join(tmpdir(), 'egw-bench-ack-'));
  const { gateway, url } = await h.startGateway(join(dir, 'data'));
  try {
    const sub = await h.connect(url, { clientId: 'b-sub', clean: mode !== 'durable' });
    let got = 0;
    sub.on('message', () => got++);
    await sub.subscribeAsync('bench/#', { qos: 1 });
    const pubs = await Promise.all(Array.from({ length: 5 }, (_, i) => h.connect(url, { clientId: `b-pub${i}` })));
    const payload = Buffer.alloc(100, 1);
    let stop = false;
    const loops = pubs.map(async (p, i) => {
      const inflight = new Set<Promise<unknown>>();
      while (!stop) {
        const pr = p.publishAsync(`bench/${i}`, payload, { qos: 1, retain: mode === 'retained' });
        inflight.add(pr);
        void pr.finally(() => inflight.delete(pr));
        if (inflight.size >= 20) await Promise.race(inflight);
      }
      await Promise.allSettled(inflight);
    });
    await new Promise((r) => setTimeout(r, 1000));
    const g0 = got;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = process.cpuUsage(c0);
    const n = got - g0;
    const dt = (performance.now() - t0) / 1000;
    stop = true;
    await Promise.all(loops);
    for (const c of [sub, ...pubs]) c.end(true);
    return { msgs: n, rate: Math.round(n / dt), cpuUsPerMsg: Number(((cpu.user + cpu.system) / n).toFixed(1)) };
  } finally {
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function child(root: string, mode: Mode, seconds: string): Promise<Measurement> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(process.execPath, [SELF, '--role', 'run', '--root', root, '--mode', mode, '--seconds', seconds], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), (Number(seconds) + 30) * 1000);
    p.once('close', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('{"msgs"'));
      if (code !== 0 || !line) reject(new Error(`measurement failed (exit ${code}): ${out}`));
      else resolvePromise(JSON.parse(line) as Measurement);
    });
  });
}

async function main(): Promise<void> {
  if (!args.compare) throw new Error('--compare /path/to/other/built/checkout is required');
  const builds = [
    { name: 'this build', root: HERE },
    { name: `compare (${args.compare})`, root: resolve(args.compare) },
  ];
  const rows: { build: string; mode: Mode; m: Measurement }[] = [];
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const mode of MODES) {
      // Alternate the order so a load burst from elsewhere hits both builds alike.
      const order = round % 2 === 0 ? builds : [...builds].reverse();
      for (const b of order) rows.push({ build: b.name, mode, m: await child(b.root, mode, args.seconds!) });
    }
  }
  console.log('| mode | build | msg/s | CPU µs/msg |');
  console.log('| --- | --- | --- | --- |');
  for (const mode of MODES) {
    for (const b of builds) {
      for (const r of rows.filter((x) => x.mode === mode && x.build === b.name)) {
        console.log(`| ${mode} | ${b.name} | ${r.m.rate} | ${r.m.cpuUsPerMsg} |`);
      }
    }
  }
}

if (args.role === 'run') {
  measure(resolve(args.root!), args.mode as Mode, Number(args.seconds)).then(
    (m) => {
      console.log(JSON.stringify(m));
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
