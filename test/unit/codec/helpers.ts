import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import type { Reading, ReadingValue } from '../../../src/pipeline/reading.js';
import { mulberry32 } from '../../../src/drivers/simulated/signal.js';

/** Repository root: tests run from dist/test/unit/codec/. */
export const ROOT = resolve(new URL('../../../..', import.meta.url).pathname);

export type CloudReading = Omit<Reading, 'source'>;
export interface CloudDecoder {
  decodeReadings(bytes: Uint8Array, opts?: { maxBodyBytes?: number; maxReadings?: number }): CloudReading[];
}

/** What the cloud decoder's DecodeError carries: the spec's code and offset (docs/codec.md §Errors). */
export interface CloudError {
  code: string;
  offset: number;
}
export const isCloudError = (e: unknown): e is CloudError =>
  e instanceof Error &&
  typeof (e as Partial<CloudError>).code === 'string' &&
  typeof (e as Partial<CloudError>).offset === 'number';

/** Loads the dependency-free example decoder (plain JS, outside the TypeScript build). */
export async function loadCloudDecoder(): Promise<CloudDecoder> {
  const mod: unknown = await import(pathToFileURL(resolve(ROOT, 'examples/cloud-decoder/decode.js')).href);
  const fn = (mod as { decodeReadings?: unknown }).decodeReadings;
  if (typeof fn !== 'function') throw new Error('examples/cloud-decoder/decode.js exports no decodeReadings');
  return { decodeReadings: fn as CloudDecoder['decodeReadings'] };
}

export function withoutSource(r: Reading): CloudReading {
  const rest: Partial<Reading> = { ...r };
  delete rest.source;
  return rest as CloudReading;
}

/** The project's seedable PRNG (mulberry32), so runs repeat from the seed. */
export const prng = mulberry32;

/** Edge values every property and fuzz run draws from (issue 5: max/min of each width, NaN…). */
export const EDGE_NUMBERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  127,
  -128,
  128,
  255,
  256,
  -129,
  32767,
  -32768,
  65535,
  65536,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 32 - 1,
  2 ** 32,
  2 ** 51 - 1,
  -(2 ** 51 - 1),
  2 ** 51,
  2 ** 53 - 1,
  -(2 ** 53 - 1),
  2 ** 53,
  1e21,
  -1e-7,
  3.31,
  1013.25,
  0.1 + 0.2,
  NaN,
  Infinity,
  -Infinity,
  Number.MIN_VALUE,
  -Number.MIN_VALUE,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.EPSILON,
  23.4,
  45.1,
  1013.2,
  -273.15,
  0.000123456789,
  123456789.123,
];

const FIELD_NAMES = [
  'temperature',
  'humidity',
  'pressure',
  'voltage',
  'online',
  'alarm',
  'low_battery',
  'current',
  'power',
  'energy',
  'frequency',
  'power_factor',
  'lat',
  'lon',
  'alt',
  'speed',
  'fix',
  'co2',
  'rpm',
  'x',
  '__proto__',
  'constructor',
  'a.b-c_d',
  'ünïcode',
];

/** String values the property and fuzz runs draw from: empty, multi-byte, astral, BOM-led, 255 bytes. */
export const EDGE_STRINGS: readonly string[] = [
  '',
  'running',
  'ünïcödé',
  '😀 ok',
  '\uFEFFbom-led',
  'x'.repeat(255),
  'é'.repeat(127),
  '{"json":"inside"}',
  '\u0000nul',
];

export function randomValue(rnd: () => number): ReadingValue {
  const k = rnd();
  if (k < 0.05) return EDGE_STRINGS[Math.floor(rnd() * EDGE_STRINGS.length)]!;
  if (k < 0.08) return null;
  if (k < 0.2) return rnd() < 0.5;
  if (k < 0.45) return EDGE_NUMBERS[Math.floor(rnd() * EDGE_NUMBERS.length)]!;
  if (k < 0.75) {
    const scale = Math.floor(rnd() * 6);
    return Math.round((rnd() - 0.5) * 10 ** Math.floor(rnd() * 10)) / 10 ** scale;
  }
  if (k < 0.9) return (rnd() - 0.5) * 2 ** Math.floor(rnd() * 80 - 20);
  return new DataView(new Float64Array([rnd() * 2 ** 52, rnd()]).buffer).getFloat64(0, true); // arbitrary bits
}

function randomId(rnd: () => number): string {
  const k = rnd();
  const len = k < 0.1 ? 0 : k < 0.2 ? 255 : Math.floor(rnd() * 64);
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(0x21 + Math.floor(rnd() * 94));
  if (len > 0 && len < 100 && rnd() < 0.1) s = s.slice(1) + 'é'; // 2 UTF-8 bytes
  return s;
}

export function randomTs(rnd: () => number): number {
  const k = rnd();
  if (k < 0.1) return 0;
  if (k < 0.2) return 2 ** 50 - 1;
  if (k < 0.6) return 1_700_000_000_000 + Math.floor(rnd() * 1e11);
  return Math.floor(rnd() * 2 ** 50);
}

export function randomReading(rnd: () => number, deviceId = randomId(rnd), ts = randomTs(rnd)): Reading {
  const values: Record<string, ReadingValue> = {};
  const schema = Math.floor(rnd() * 4);
  const pool =
    schema === 1
      ? FIELD_NAMES.slice(0, 7)
      : schema === 2
        ? FIELD_NAMES.slice(3, 12)
        : schema === 3
          ? FIELD_NAMES.slice(12, 17)
          : FIELD_NAMES;
  const n = Math.floor(rnd() * (pool.length + 2));
  for (let i = 0; i < n; i++) {
    const name =
      rnd() < 0.9 ? pool[Math.floor(rnd() * pool.length)]! : FIELD_NAMES[Math.floor(rnd() * FIELD_NAMES.length)]!;
    Object.defineProperty(values, name, {
      value: randomValue(rnd),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  const q = rnd();
  const r: Reading = {
    deviceId,
    ts,
    values,
    quality: q < 0.7 ? 'good' : q < 0.85 ? 'uncertain' : 'bad',
    source: 'mqtt',
  };
  if (rnd() < 0.1) r.units = { [FIELD_NAMES[Math.floor(rnd() * FIELD_NAMES.length)]!]: rnd() < 0.5 ? '°C' : '' };
  return r;
}

/** A batch of one device: random walk of timestamps with jumps backwards (non-monotonic). */
export function randomBatch(rnd: () => number, max = 40): Reading[] {
  const id = randomId(rnd);
  const n = 1 + Math.floor(rnd() * max);
  let ts = randomTs(rnd);
  const out: Reading[] = [];
  for (let i = 0; i < n; i++) {
    out.push(randomReading(rnd, id, ts));
    const step = rnd() < 0.8 ? 1000 : Math.floor((rnd() - 0.5) * 2 ** Math.floor(rnd() * 48));
    ts = Math.min(2 ** 50 - 1, Math.max(0, ts + step));
  }
  return out;
}
