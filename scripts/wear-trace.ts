// Where the bytes of bench-uplink `wear` go: runs the same load (10 QoS 1 publishers at `rate`/s,
// default config, cloud up) with strace attached to the gateway, then attributes every pwrite/write
// to its file, and every WAL frame and main-database page to the table or index that owns the page
// (dbstat, read while the gateway still runs). Linux only; needs strace.
//   node dist/scripts/wear-trace.js [seconds=10] [rate=1000]
// EGW_GATEWAY_MAIN=DIR/dist/src/main.js traces another build; EGW_TRACE_CLOUD_DOWN=1 an outage.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Publisher, startRig } from '../test/integration/uplink-scenarios.js';

const [a, b] = process.argv.slice(2);
const seconds = Number(a ?? 10);
const rate = Number(b ?? 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function writeBytes(pid: number): number {
  return Number(/write_bytes: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? NaN);
}

/** strace -xx prints paths hex-escaped too. */
function unhex(s: string): string {
  return s.replace(/((?:\\x[0-9a-f]{2})+)/g, (h) => Buffer.from(h.replace(/\\x/g, ''), 'hex').toString('utf8'));
}

async function main(): Promise<void> {
  const rig = await startRig(process.env['EGW_BENCH_YAML'] ?? '');
  const pid = rig.gateway.child.pid!;
  const url = `mqtt://127.0.0.1:${rig.brokerPort}`;
  const out = join(rig.dir, 'strace.txt');
  // EGW_TRACE_CLOUD_DOWN=1: the cloud is stopped first (an outage: every reading waits in the outbox).
  if (process.env['EGW_TRACE_CLOUD_DOWN'] === '1') await rig.cloud.stop();
  const pubs = Array.from({ length: 10 }, (_, k) => new Publisher(url, `wear-${k}`, 64));
  await sleep(1000);
  const st = spawn(
    'strace',
    ['-f', '-p', String(pid), '-y', '-xx', '-s', '4', '-e', 'trace=pwrite64,write,pwritev,writev', '-o', out],
    {
      stdio: 'ignore',
    },
  );
  await sleep(1000);
  const w0 = writeBytes(pid);
  await Promise.all(pubs.map((p) => p.run(Number.MAX_SAFE_INTEGER, seconds * 1000, rate / pubs.length)));
  await sleep(1500);
  const w1 = writeBytes(pid);
  st.kill('SIGINT');
  await new Promise((r) => st.once('exit', r));
  const readings = pubs.reduce((s, p) => s + p.acked.size, 0);
  const dbPath = join(rig.dir, 'data', 'gateway.db');
  const db = new Database(dbPath, { readonly: true });
  const pageSize = (db.pragma('page_size', { simple: true }) as number) ?? 1024;
  const owner = new Map<number, string>();
  for (const r of db.prepare('SELECT name, pageno, pagetype FROM dbstat').all() as {
    name: string;
    pageno: number;
    pagetype: string;
  }[])
    owner.set(r.pageno, `${r.name}${r.pagetype === 'internal' ? ' (interior)' : ''}`);
  db.close();
  const perFile = new Map<string, number>();
  const perOwner = new Map<string, number>();
  const ckptOwner = new Map<string, number>();
  let frames = 0;
  const re = /(pwrite64|write)\((\d+)<([^>]*)>, "((?:\\x[0-9a-f]{2})*)"\.*, (\d+)(?:, (\d+))?\) = (\d+)/;
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const [, , , rawPath, head, , off, ret] = m;
    const path = unhex(rawPath!);
    const n = Number(ret);
    const file = path!.replace(rig.dir, '');
    perFile.set(file, (perFile.get(file) ?? 0) + n);
    const bytes = Buffer.from(head!.replace(/\\x/g, ''), 'hex');
    if (path!.endsWith('-wal') && n === 24 && bytes.length >= 4) {
      const pg = bytes.readUInt32BE(0);
      frames++;
      const who = pg === 1 ? 'page 1 (header: size, freelist)' : (owner.get(pg) ?? 'free/unknown page');
      perOwner.set(who, (perOwner.get(who) ?? 0) + 24 + pageSize);
    } else if (path!.endsWith('gateway.db') && off !== undefined) {
      const pg = Math.floor(Number(off) / pageSize) + 1;
      const who = pg === 1 ? 'page 1' : (owner.get(pg) ?? 'free/unknown page');
      ckptOwner.set(who, (ckptOwner.get(who) ?? 0) + n);
    }
  }
  await Promise.all(pubs.map((p) => p.close()));
  await rig.close();
  const per = (m: Map<string, number>) =>
    Object.fromEntries([...m].sort((x, y) => y[1] - x[1]).map(([k, v]) => [k, +(v / readings).toFixed(1)]));
  console.log(
    JSON.stringify(
      {
        readings,
        writeBytesPerReading: Math.round((w1 - w0) / readings),
        syscallBytesPerReadingByFile: per(perFile),
        walFramesPerReading: +(frames / readings).toFixed(3),
        walBytesPerReadingByOwner: per(perOwner),
        checkpointBytesPerReadingByOwner: per(ckptOwner),
      },
      null,
      1,
    ),
  );
}

await main();
