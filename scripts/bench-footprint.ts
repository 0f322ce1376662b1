// One set of V8 flags for both figures: idle RSS of the default config (what `npm start` runs) and
// end-to-end ingest as a share of Mosquitto (bench-uplink ingest), for each candidate, in one run.
//   node dist/scripts/bench-footprint.js [--seconds 10] [--publishers 8] [--idle 30] [CANDIDATE ...]
// Idle RSS is the median of 3 samples ending `--idle` seconds after start (V8's first full GCs after
// start-up take ~10-20 s to settle; earlier samples carry start-up garbage).
// A candidate is a quoted string of node flags and NAME=value environment settings, e.g.
//   "--max-semi-space-size=8 --v8-pool-size=1" "MALLOC_ARENA_MAX=2 --v8-pool-size=1"; "" = node defaults.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { rssKb } from './proc-stats.js';

const MAIN = new URL('../src/main.js', import.meta.url).pathname;
const BENCH_UPLINK = new URL('./bench-uplink.js', import.meta.url).pathname;
const DEFAULT_CONFIG = new URL('../../config/gateway.yaml', import.meta.url).pathname;

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return v;
};
const seconds = opt('--seconds', 10);
const publishers = opt('--publishers', 8);
const idleS = opt('--idle', 30);
const candidates = args.length
  ? args
  : ['--max-semi-space-size=1 --v8-pool-size=1', '--max-semi-space-size=8 --v8-pool-size=1 --optimize-for-size', ''];

function parse(c: string): { flags: string[]; env: Record<string, string> } {
  const flags: string[] = [];
  const env: Record<string, string> = {};
  for (const t of c.split(/\s+/).filter(Boolean)) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(t);
    if (m) env[m[1]!] = m[2]!;
    else flags.push(t);
  }
  return { flags, env };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The embedded default config as `npm start` runs it, with ephemeral ports and a temp data dir. */
async function idleRss(c: string): Promise<{ rssMb: number; earlyMb: number; readyMs: number }> {
  const { flags, env } = parse(c);
  const dir = mkdtempSync(join(tmpdir(), 'egw-foot-'));
  const cfg = readFileSync(DEFAULT_CONFIG, 'utf8')
    .replace(/^( {2}data_dir:).*$/m, `$1 ${join(dir, 'data')}`)
    .replace(/^( {2}port:) (9464|5683|1883)$/gm, '$1 0');
  writeFileSync(join(dir, 'gw.yaml'), cfg);
  const t0 = performance.now();
  const child = spawn(process.execPath, [...flags, MAIN, '--config', join(dir, 'gw.yaml')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const readyMs = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('not ready in 30 s')), 30000);
      createInterface({ input: child.stdout! }).on('line', (l) => {
        if (!l.includes('gateway ready')) return;
        clearTimeout(timer);
        resolve(performance.now() - t0);
      });
      child.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
    });
    // Start-up peak as bench-broker samples it (3 s after READY), then idle: the median of the last seconds.
    await sleep(3000);
    const earlyMb = +(rssKb(child.pid!) / 1024).toFixed(1);
    await sleep(Math.max(0, idleS - 6) * 1000);
    const samples: number[] = [];
    for (let i = 0; i < 3; i++) {
      samples.push(rssKb(child.pid!));
      await sleep(1000);
    }
    samples.sort((x, y) => x - y);
    return { rssMb: +(samples[1]! / 1024).toFixed(1), earlyMb, readyMs: Math.round(readyMs) };
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

function ingestRatio(c: string): { ratio: number; gatewayMsgPerS: number; mosquittoMsgPerS: number } {
  const { flags, env } = parse(c);
  const r = spawnSync(process.execPath, [BENCH_UPLINK, 'ingest', String(seconds), String(publishers)], {
    env: { ...process.env, ...env, EGW_GATEWAY_NODE_FLAGS: flags.join(' ') },
    encoding: 'utf8',
    timeout: (seconds * 2 + 180) * 1000,
  });
  const line = r.stdout.split('\n').find((l) => l.includes('"bench":"ingest"'));
  if (!line) throw new Error(`bench-uplink failed: ${r.stderr}`);
  const j = JSON.parse(line) as { ratio: number; gatewayEndToEndMsgPerS: number; mosquittoAloneMsgPerS: number };
  return { ratio: j.ratio, gatewayMsgPerS: j.gatewayEndToEndMsgPerS, mosquittoMsgPerS: j.mosquittoAloneMsgPerS };
}

for (const c of candidates) {
  const idle = await idleRss(c);
  const ingest = ingestRatio(c);
  console.log(
    JSON.stringify({
      bench: 'footprint',
      candidate: c || '(node defaults)',
      idleRssMb: idle.rssMb,
      rssReadyPlus3sMb: idle.earlyMb,
      readyMs: idle.readyMs,
      ...ingest,
    }),
  );
}
