// The shared normaliser's cost per payload, side by side with its reference in one run: JSON.parse
// of the same bytes alone (what any JSON ingest must pay). CPU time (process.cpuUsage), not wall
// time, so a loaded machine still gives comparable figures (docs/readings.md).
//   node dist/scripts/bench-normalise.js [rounds=9] [iterations=100000]
import { normaliseJson } from '../src/pipeline/normalise.js';

const rounds = Number(process.argv[2] ?? 9);
const iterations = Number(process.argv[3] ?? 100_000);

const payloads: Record<string, string> = {
  'flat, 1 value': '{"seq":12345}',
  'flat, 5 values + ts': '{"ts":1700000000000,"temperature":21.5,"humidity":40.2,"door":true,"rpm":null}',
  'strings + nested + deviceId':
    '{"deviceId":"dev-1","temperature":21.5,"status":"ok","fw":"1.4.2","env":{"rh":40,"co2":{"ppm":412}}}',
  'structured, 6 values + units':
    '{"ts":1700000000000,"values":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6},"quality":"good","units":{"a":"m"}}',
  'batch of 20': JSON.stringify(Array.from({ length: 20 }, (_, i) => ({ ts: 1_700_000_000_000 + i, t: i, h: i / 2 }))),
};

/** CPU nanoseconds per call. */
function cpuNs(fn: () => unknown, n: number): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / n;
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

for (const [name, text] of Object.entries(payloads)) {
  const bytes = Buffer.from(text);
  const parse: number[] = [];
  const norm: number[] = [];
  for (let r = 0; r < rounds; r++) {
    parse.push(cpuNs(() => JSON.parse(bytes.toString('utf8')), iterations));
    norm.push(cpuNs(() => normaliseJson(bytes, 'dev-1', 'mqtt', 1), iterations));
  }
  const p = median(parse);
  const n = median(norm);
  console.log(
    JSON.stringify({
      payload: name,
      bytes: bytes.length,
      jsonParseNs: Math.round(p),
      normaliseNs: Math.round(n),
      overheadNs: Math.round(n - p),
      ratio: +(n / p).toFixed(2),
    }),
  );
}
