/**
 * Codec benchmark (issue 5): bytes and encode/decode ops/s of the edge-gateway binary format vs
 * JSON, msgpackr and cbor-x, side by side in one run, for the typical single reading and a
 * 100-reading batch at 1 Hz, without and with raw deflate.
 *
 *   npx tsc -p . && node dist/scripts/bench-codec.js [--ms 1000]
 *
 * JSON/msgpack/CBOR carry the flat object of the issue ({device_id, timestamp, temperature, …});
 * the codec carries the equivalent Reading. "decode" includes bytes → objects (JSON: utf8 + parse).
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { Encoder as CborEncoder } from 'cbor-x';
import { decode, encodeBatch, encodeReading } from '../src/codec/index.js';
import type { Reading } from '../src/pipeline/reading.js';

const argMs = process.argv.indexOf('--ms');
const RUN_MS = argMs > 0 ? Number(process.argv[argMs + 1]) : 1000;

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
  enc: number;
  dec: number;
  rt: number;
}

/**
 * The machine is shared and noisy: every codec of a table is measured in ROUNDS interleaved
 * slices and keeps its best slice, so a burst of load hits all formats alike.
 */
const ROUNDS = 5;
interface Case {
  c: Codec<never>;
  v: never;
}
/** Pairs a codec with its value, erasing T so formats carrying different shapes share a table. */
const bind = <T>(c: Codec<T>, v: T): Case => ({ c, v }) as unknown as Case;

function measureAll(cases: Case[]): Row[] {
  const rows: Row[] = cases.map(({ c, v }) => ({ name: c.name, bytes: c.enc(v).length, enc: 0, dec: 0, rt: 0 }));
  const slice = RUN_MS / ROUNDS;
  for (let round = 0; round < ROUNDS; round++) {
    cases.forEach(({ c, v }, i) => {
      const row = rows[i]!;
      const bytes = c.enc(v);
      row.enc = Math.max(
        row.enc,
        opsPerSec(() => (sink += c.enc(v).length), slice),
      );
      row.dec = Math.max(
        row.dec,
        opsPerSec(() => (sink += c.dec(bytes) === undefined ? 0 : 1), slice),
      );
      row.rt = Math.max(
        row.rt,
        opsPerSec(() => (sink += c.dec(c.enc(v)) === undefined ? 0 : 1), slice),
      );
    });
  }
  return rows;
}

function table(title: string, rows: Row[], perReading: number): void {
  const json = rows.find((r) => r.name === 'JSON')!;
  const f = (x: number): string => Math.round(x).toLocaleString('en-US');
  console.log(`\n### ${title}\n`);
  console.log('| format | bytes | B/reading | encode ops/s | decode ops/s | encode+decode ops/s | × JSON (enc+dec) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.bytes} | ${(r.bytes / perReading).toFixed(2)} | ${f(r.enc)} | ${f(r.dec)} | ${f(r.rt)} | ${(r.rt / json.rt).toFixed(1)}× |`,
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

console.log(
  `node ${process.version}, ${process.arch}, ${RUN_MS} ms per measurement (best of ${ROUNDS} interleaved slices)`,
);
const withJson = <T>(c: Codec<T>): Codec<T> => (c.name === 'JSON + deflate' ? { ...c, name: 'JSON' } : c);
table('Single reading', measureAll([...refs<Flat>().map((c) => bind(c, single)), bind(codecSingle, reading)]), 1);
table(
  'Single reading, deflate (JSON row = JSON + deflate)',
  measureAll([...refs<Flat>().map((c) => bind(withJson(deflated(c)), single)), bind(codecSingleZ, reading)]),
  1,
);
table(
  'Batch of 100 readings at 1 Hz',
  measureAll([...refs<Flat[]>().map((c) => bind(c, batchFlat)), bind(codecBatch, batch)]),
  100,
);
table(
  'Batch of 100 readings at 1 Hz, deflate (JSON row = JSON + deflate)',
  measureAll([...refs<Flat[]>().map((c) => bind(withJson(deflated(c)), batchFlat)), bind(codecBatchZ, batch)]),
  100,
);
if (sink === -1) console.log('');
