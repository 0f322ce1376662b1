/**
 * Codec benchmark (issue 5): bytes and encode/decode ops/s of the edge-gateway binary format vs
 * JSON, msgpackr and cbor-x, side by side in one run, for the typical single reading and a
 * 100-reading batch at 1 Hz, without and with raw deflate.
 *
 *   npx tsc -p . && node dist/scripts/bench-codec.js [--ms 1500] [--rounds 7] [--compare OTHER/dist/src/codec/index.js]
 *
 * --compare loads another build of the codec (e.g. the previous commit, built in /tmp) and measures
 * it in the same rounds as this one, then prints this build's ops/s over the other's per round
 * (medians): old vs new, side by side, on the same loaded machine. With --ab as well, only that
 * comparison runs, finely interleaved (ROUNDS pairs of short slices, alternating which goes first):
 * on a loaded shared machine, per-pair ratios of slices taken milliseconds apart are what holds still.
 *
 * JSON/msgpack/CBOR carry the flat object of the issue ({device_id, timestamp, temperature, …});
 * the codec carries the equivalent Reading. "decode" includes bytes → objects (JSON: utf8 + parse).
 */
import os from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { Encoder as CborEncoder } from 'cbor-x';
import { decode, encodeBatch, encodeReading } from '../src/codec/index.js';
import type { Reading } from '../src/pipeline/reading.js';

const argMs = process.argv.indexOf('--ms');
const RUN_MS = argMs > 0 ? Number(process.argv[argMs + 1]) : 1500;
const argRounds = process.argv.indexOf('--rounds');
/** Each measurement is split over this many interleaved rounds (odd, so the median is one round). */
const ROUNDS = argRounds > 0 ? Number(process.argv[argRounds + 1]) : 7;
const argCompare = process.argv.indexOf('--compare');
type CodecModule = typeof import('../src/codec/index.js');
const other: CodecModule | undefined =
  argCompare > 0
    ? ((await import(pathToFileURL(resolve(process.argv[argCompare + 1]!)).href)) as CodecModule)
    : undefined;
const OTHER = 'codec, --compare build';

interface Flat {
  device_id: string;
  timestamp: number;
  temperature: number;
  humidity: number;
  pressure: number;
  voltage: number;
  online: boolean;
  alarm: boolean;
  low_battery: boolean;
}

const T0 = 1_732_262_400_000;
const single: Flat = {
  device_id: 'press-07-line-b',
  timestamp: T0,
  temperature: 23.4,
  humidity: 45.1,
  pressure: 1013.2,
  voltage: 3.31,
  online: true,
  alarm: false,
  low_battery: false,
};

/** Deterministic 1 Hz random walk (LCG), one decimal like real sensors, so runs are comparable. */
function walk(n: number): Flat[] {
  let seed = 42;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5;
  const out: Flat[] = [];
  let { temperature: t, humidity: h, pressure: p, voltage: v } = single;
  for (let i = 0; i < n; i++) {
    t = Math.round((t + rnd() * 0.2) * 10) / 10;
    h = Math.round((h + rnd() * 0.4) * 10) / 10;
    p = Math.round((p + rnd() * 0.4) * 10) / 10;
    v = Math.round((v - Math.abs(rnd()) * 0.002) * 100) / 100;
    out.push({
      ...single,
      timestamp: T0 + i * 1000,
      temperature: t,
      humidity: h,
      pressure: p,
      voltage: v,
      alarm: i % 37 === 0,
    });
  }
  return out;
}

function toReading(f: Flat): Reading {
  const { device_id, timestamp, ...values } = f;
  return { deviceId: device_id, ts: timestamp, values, quality: 'good', source: 'mqtt' };
}

interface Codec<T> {
  name: string;
  enc(v: T): Uint8Array;
  dec(b: Uint8Array): unknown;
}

const packr = new Packr({ useRecords: false });
const cbor = new CborEncoder({ useRecords: false, mapsAsObjects: true });
const z = (b: Uint8Array): Buffer => deflateRawSync(b);
const unz = (b: Uint8Array): Buffer => inflateRawSync(b);

function refs<T>(): Codec<T>[] {
  return [
    {
      name: 'JSON',
      enc: (v) => Buffer.from(JSON.stringify(v)),
      dec: (b) => JSON.parse((b as Buffer).toString('utf8')),
    },
    { name: 'msgpackr', enc: (v) => packr.pack(v), dec: (b) => packr.unpack(b) },
    { name: 'cbor-x', enc: (v) => cbor.encode(v), dec: (b) => cbor.decode(b) },
  ];
}
function deflated<T>(c: Codec<T>): Codec<T> {
  return { name: `${c.name} + deflate`, enc: (v) => z(c.enc(v)), dec: (b) => c.dec(unz(b)) };
}

let sink = 0;
function opsPerSec(fn: () => void, ms: number): number {
  for (let i = 0; i < 200; i++) fn(); // warm-up: let V8 optimise before timing
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(ms * 1e6));
  let now = start;
  while (now < end) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

interface Row {
  name: string;
  bytes: number;
  /** ops/s per round, in round order (same index = same moment for every codec of the table). */
  enc: number[];
  dec: number[];
  rt: number[];
}

/**
 * The machine is shared and noisy: each table runs ROUNDS rounds, and in every round each codec
 * is measured once (encode, decode, encode+decode, RUN_MS / ROUNDS ms each), in an order rotated
 * from round to round. A burst of load then hits one round of every codec alike, and a ratio to
 * JSON is taken within each round; the table reports medians.
 */
interface Case {
  c: Codec<never>;
  v: never;
}
/** Pairs a codec with its value, erasing T so formats carrying different shapes share a table. */
const bind = <T>(c: Codec<T>, v: T): Case => ({ c, v }) as unknown as Case;

function measureAll(cases: Case[]): Row[] {
  const rows: Row[] = cases.map(({ c, v }) => ({ name: c.name, bytes: c.enc(v).length, enc: [], dec: [], rt: [] }));
  const slice = RUN_MS / ROUNDS;
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < cases.length; k++) {
      const i = (k + round) % cases.length;
      const { c, v } = cases[i]!;
      const row = rows[i]!;
      const bytes = c.enc(v);
      row.enc.push(opsPerSec(() => (sink += c.enc(v).length), slice));
      row.dec.push(opsPerSec(() => (sink += c.dec(bytes) === undefined ? 0 : 1), slice));
      row.rt.push(opsPerSec(() => (sink += c.dec(c.enc(v)) === undefined ? 0 : 1), slice));
    }
  }
  return rows;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Per-round ratios of a row's encode+decode rate to JSON's. */
const ratios = (r: Row, json: Row): number[] => r.rt.map((x, i) => x / json.rt[i]!);

const summary: string[] = [];
const compared: string[] = [];

function table(title: string, rows: Row[], perReading: number, target?: number): void {
  const json = rows.find((r) => r.name === 'JSON')!;
  const f = (x: number): string => Math.round(x).toLocaleString('en-US');
  console.log(`\n#### ${title}\n`);
  console.log(
    '| format | bytes | B/reading | encode ops/s | decode ops/s | encode+decode ops/s | × JSON (enc+dec), median | range over rounds |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const q = ratios(r, json);
    console.log(
      `| ${r.name} | ${r.bytes} | ${(r.bytes / perReading).toFixed(2)} | ${f(median(r.enc))} | ${f(median(r.dec))} | ${f(median(r.rt))} | ${median(q).toFixed(1)}× | ${Math.min(...q).toFixed(1)}–${Math.max(...q).toFixed(1)}× |`,
    );
  }
  const old = rows.find((r) => r.name.startsWith(OTHER));
  if (old !== undefined) {
    const cur = rows[rows.length - 1]!;
    const per = (a: number[], b: number[]): string => {
      const q = a.map((x, i) => x / b[i]!);
      return `${median(q).toFixed(2)} (${Math.min(...q).toFixed(2)}–${Math.max(...q).toFixed(2)})`;
    };
    compared.push(
      `| ${title} | ${old.bytes} → ${cur.bytes} | ${per(cur.enc, old.enc)} | ${per(cur.dec, old.dec)} | ${per(cur.rt, old.rt)} |`,
    );
  }
  if (target !== undefined) {
    const q = ratios(rows[rows.length - 1]!, json);
    const met = q.filter((x) => x >= target).length;
    summary.push(
      `- ${title}: **${median(q).toFixed(1)}×** JSON (median of ${q.length} rounds; range ${Math.min(...q).toFixed(1)}–${Math.max(...q).toFixed(1)}×; target ≥ ${target}×, met in ${met} of ${q.length} rounds)`,
    );
  }
}

const reading = toReading(single);
const batchFlat = walk(100);
const batch = batchFlat.map(toReading);

const codecSingle: Codec<Reading> = {
  name: 'edge-gateway codec',
  enc: (r) => encodeReading(r, { compress: 'never' }),
  dec: (b) => decode(b),
};
const codecBatch: Codec<Reading[]> = {
  name: 'edge-gateway codec',
  enc: (r) => encodeBatch(r, { compress: 'never' }),
  dec: (b) => decode(b),
};
const codecBatchZ: Codec<Reading[]> = {
  name: 'edge-gateway codec + deflate (auto)',
  enc: (r) => encodeBatch(r),
  dec: (b) => decode(b),
};
const codecSingleZ: Codec<Reading> = {
  name: 'edge-gateway codec + deflate (auto)',
  enc: (r) => encodeReading(r),
  dec: (b) => decode(b),
};

/** The same four codec cases built from the --compare module (none without --compare). */
function otherCases(batchOf: boolean, compress: boolean): Case[] {
  if (other === undefined) return [];
  const name = `${OTHER}${compress ? ' + deflate (auto)' : ''}`;
  const c = compress ? undefined : ('never' as const);
  if (batchOf) {
    const k: Codec<Reading[]> = {
      name,
      enc: (r) => other.encodeBatch(r, { compress: c }),
      dec: (b) => other.decode(b),
    };
    return [bind(k, batch)];
  }
  const k: Codec<Reading> = { name, enc: (r) => other.encodeReading(r, { compress: c }), dec: (b) => other.decode(b) };
  return [bind(k, reading)];
}

/** --ab: this build vs --compare, per operation, ROUNDS pairs of RUN_MS / ROUNDS ms slices each. */
function abCompare(o: CodecModule): void {
  // The same bytes from both builds for numeric readings (the version-1 vectors are unchanged).
  const z = Buffer.from(encodeBatch(batch));
  const one = Buffer.from(encodeReading(reading, { compress: 'never' }));
  const plain = Buffer.from(encodeBatch(batch, { compress: 'never' }));
  const ops: [string, () => unknown, () => unknown][] = [
    ['single: encode', () => o.encodeReading(reading, { compress: 'never' }), () => codecSingle.enc(reading)],
    ['single: decode', () => o.decode(one), () => decode(one)],
    ['batch of 100: encode', () => o.encodeBatch(batch, { compress: 'never' }), () => codecBatch.enc(batch)],
    ['batch of 100: decode', () => o.decode(plain), () => decode(plain)],
    ['batch of 100, deflated: encode', () => o.encodeBatch(batch), () => encodeBatch(batch)],
    ['batch of 100, deflated: decode (inflate + parse)', () => o.decode(z), () => decode(z)],
  ];
  console.log(
    `\nThis build ÷ --compare build, ${ROUNDS} interleaved pairs of ${(RUN_MS / ROUNDS).toFixed(0)} ms slices:\n`,
  );
  console.log('| operation | this build ops/s | other build ops/s | ratio, median of pairs | range |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [name, a, b] of ops) {
    const q: number[] = [];
    const ra: number[] = [];
    const rb: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const first = i % 2 === 0;
      const x = first ? opsPerSec(() => (sink += a() === undefined ? 0 : 1), RUN_MS / ROUNDS) : 0;
      const y = opsPerSec(() => (sink += b() === undefined ? 0 : 1), RUN_MS / ROUNDS);
      const x2 = first ? x : opsPerSec(() => (sink += a() === undefined ? 0 : 1), RUN_MS / ROUNDS);
      ra.push(x2);
      rb.push(y);
      q.push(y / x2);
    }
    const f = (v: number): string => Math.round(v).toLocaleString('en-US');
    console.log(
      `| ${name} | ${f(median(rb))} | ${f(median(ra))} | ${median(q).toFixed(3)} | ${Math.min(...q).toFixed(2)}–${Math.max(...q).toFixed(2)} |`,
    );
  }
}

console.log(
  `node ${process.version}, ${process.arch}, ${os.cpus().length} CPUs, load average ${os.loadavg()[0]!.toFixed(2)} at start; ` +
    `${RUN_MS} ms per measurement in ${ROUNDS} interleaved rounds (medians)`,
);
if (other !== undefined && process.argv.includes('--ab')) {
  abCompare(other);
  process.exit(0);
}
const withJson = <T>(c: Codec<T>): Codec<T> => (c.name === 'JSON + deflate' ? { ...c, name: 'JSON' } : c);
table(
  'Single reading',
  measureAll([...refs<Flat>().map((c) => bind(c, single)), ...otherCases(false, false), bind(codecSingle, reading)]),
  1,
  5,
);
table(
  'Single reading, deflate (JSON row = JSON + deflate)',
  measureAll([
    ...refs<Flat>().map((c) => bind(withJson(deflated(c)), single)),
    ...otherCases(false, true),
    bind(codecSingleZ, reading),
  ]),
  1,
);
table(
  'Batch of 100 readings at 1 Hz',
  measureAll([...refs<Flat[]>().map((c) => bind(c, batchFlat)), ...otherCases(true, false), bind(codecBatch, batch)]),
  100,
  10,
);
table(
  'Batch of 100 readings at 1 Hz, deflate (JSON row = JSON + deflate)',
  measureAll([
    ...refs<Flat[]>().map((c) => bind(withJson(deflated(c)), batchFlat)),
    ...otherCases(true, true),
    bind(codecBatchZ, batch),
  ]),
  100,
);
console.log(`\nAgainst the speed targets (load average ${os.loadavg()[0]!.toFixed(2)} at the end):\n`);
for (const line of summary) console.log(line);
if (compared.length > 0) {
  console.log(`\nThis build ÷ --compare build (${process.argv[argCompare + 1]}), ops/s per round, median (range):\n`);
  console.log('| case | bytes (other → this) | encode | decode | encode+decode |');
  console.log('| --- | --- | ---: | ---: | ---: |');
  for (const line of compared) console.log(line);
}
if (sink === -1) console.log('');
