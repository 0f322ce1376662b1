// CLI start-up benchmark: wall time of `edge-gateway --version` and `edge-gateway ctl status`
// (process start → exit, against a running gateway), side by side with libcoap's coap-client-notls
// doing the same GET (the reference), bare `node -e 0` (the floor) and, with --base, the same
// commands of another build (e.g. the commit before the CLI fast path). Runs are interleaved
// round-robin so machine noise spreads over every case alike.
//
// Usage: node dist/scripts/bench-ctl.js [--rounds 15] [--base DIR]
// A base build to compare with (DIR/dist/src/main.js), e.g. e02434a (main before the CLI fast path):
//   B=/tmp/ctl-bench-base; rm -rf $B && mkdir $B && git archive e02434a | tar -x -C $B &&
//   ln -s "$(readlink -f node_modules)" $B/node_modules && (cd $B && npx tsc -p tsconfig.json)
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { READ, startGateway } from '../test/integration/coap-harness.js';

const { values: o } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    base: { type: 'string' },
  },
});
const rounds = Math.max(1, Math.min(200, Number(o.rounds)));
const MAIN = new URL('../src/main.js', import.meta.url).pathname;

interface Case {
  name: string;
  cmd: string;
  args: string[];
  /** Environment additions (the token for ctl). */
  env?: NodeJS.ProcessEnv;
}

/** Wall time of one run in ms (spawn → exit); a non-zero exit is an error (the figures would lie). */
function timeRun(c: Case): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(c.cmd, c.args, { env: { ...process.env, ...c.env }, timeout: 20_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`${c.name}: ${err.message} ${stderr}`));
      else resolve(performance.now() - t0);
    });
  });
}

function stats(xs: number[]): { median: number; p90: number; min: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { median: at(0.5), p90: at(0.9), min: s[0]! };
}

async function main(): Promise<void> {
  const h = await startGateway();
  try {
    const host = `127.0.0.1:${h.port}`;
    const env = { EDGE_GATEWAY_TOKEN: READ };
    const cases: Case[] = [
      { name: 'node -e 0 (floor)', cmd: process.execPath, args: ['-e', '0'] },
      {
        name: 'coap-client-notls GET /mgmt/status (reference)',
        cmd: 'coap-client-notls',
        args: ['-m', 'get', `coap://${host}/mgmt/status?token=${READ}`],
      },
      { name: 'edge-gateway --version', cmd: process.execPath, args: [MAIN, '--version'] },
      { name: 'edge-gateway ctl status', cmd: process.execPath, args: [MAIN, 'ctl', '--host', host, 'status'], env },
    ];
    if (o.base) {
      const baseMain = join(o.base, 'dist/src/main.js');
      if (!existsSync(baseMain)) throw new Error(`${baseMain} not found: build the base first (see the header)`);
      cases.push(
        { name: 'base --version', cmd: process.execPath, args: [baseMain, '--version'] },
        { name: 'base ctl status', cmd: process.execPath, args: [baseMain, 'ctl', '--host', host, 'status'], env },
      );
    }
    const times = new Map<string, number[]>(cases.map((c) => [c.name, []]));
    for (const c of cases) await timeRun(c); // warm the page cache once
    for (let r = 0; r < rounds; r++) for (const c of cases) times.get(c.name)!.push(await timeRun(c));
    const rows = cases.map((c) => ({ name: c.name, ...stats(times.get(c.name)!) }));
    const width = Math.max(...rows.map((r) => r.name.length));
    console.log(`${rounds} rounds, wall ms per run (spawn → exit)`);
    console.log(`${'case'.padEnd(width)}  median     p90     min`);
    for (const r of rows) {
      const f = (x: number) => x.toFixed(0).padStart(6);
      console.log(`${r.name.padEnd(width)}  ${f(r.median)}  ${f(r.p90)}  ${f(r.min)}`);
    }
    const med = (name: string) => rows.find((r) => r.name === name)?.median;
    if (o.base) {
      const ratio = (a: string, b: string) => (med(a)! / med(b)!).toFixed(1);
      console.log(
        `base/new median: --version ${ratio('base --version', 'edge-gateway --version')}x, ctl status ${ratio('base ctl status', 'edge-gateway ctl status')}x`,
      );
    }
    console.log(
      `targets: ctl status ≤ 300 ms (${med('edge-gateway ctl status')!.toFixed(0)}), --version ≤ 150 ms (${med('edge-gateway --version')!.toFixed(0)})`,
    );
  } finally {
    await h.close();
  }
}

await main();
