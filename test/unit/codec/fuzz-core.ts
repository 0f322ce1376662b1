import { isDeepStrictEqual } from 'node:util';
import { deflateRawSync } from 'node:zlib';
import { CodecError, decode, encodeBatch, encodeReading } from '../../../src/codec/index.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { isCloudError, prng, randomBatch, randomReading, withoutSource, type CloudDecoder } from './helpers.js';
import { VECTORS } from './vectors.js';

/**
 * Fuzzing core shared by test/unit/codec/fuzz.test.ts (a bounded count in `npm test`) and
 * scripts/fuzz-codec.ts (≥ 1,000,000 inputs). Inputs: random bytes, random bytes behind a valid
 * header, and mutations (bit flips, byte overwrites, inserts, deletes, truncations, varint bombs,
 * spliced segments) of valid messages — also mutations of the body re-deflated, so the inflated
 * body gets fuzzed too. Holds: decode returns or throws CodecError, nothing else; output stays
 * within the stated bound (readings ≤ body/2, values ≤ 8 × body bytes). With a `reference`
 * decoder (the cloud example, written from the spec alone) every input must also get the same
 * outcome from both: the same readings, or the same error code at the same offset — which holds
 * only if docs/codec.md pins down the order of checks and what an offset points at.
 */
export interface FuzzReport {
  cases: number;
  decoded: number;
  codecErrors: number;
  byCode: Record<string, number>;
  ms: number;
  maxValuesPerBodyByte: number;
}

function bodyBytes(input: Uint8Array): number {
  if (input.length >= 2 && (input[1]! & 0x02) !== 0) {
    let v = 0;
    let mul = 1;
    for (let i = 2; i < Math.min(input.length, 10); i++) {
      v += (input[i]! & 0x7f) * mul;
      if (input[i]! < 0x80) break;
      mul *= 128;
    }
    return v;
  }
  return input.length;
}

function mutate(rnd: () => number, src: Uint8Array): Uint8Array {
  let b = Uint8Array.from(src);
  const ops = 1 + Math.floor(rnd() * 4);
  for (let k = 0; k < ops; k++) {
    const at = Math.floor(rnd() * (b.length + 1));
    const op = Math.floor(rnd() * 8);
    if (op === 0 && b.length > 0) b[at % b.length]! ^= 1 << Math.floor(rnd() * 8);
    else if (op === 1 && b.length > 0) b[at % b.length] = Math.floor(rnd() * 256);
    else if (op === 2) b = Uint8Array.from([...b.subarray(0, at), Math.floor(rnd() * 256), ...b.subarray(at)]);
    else if (op === 3 && b.length > 0) b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1)]);
    else if (op === 4) b = b.subarray(0, at);
    else if (op === 5)
      b = Uint8Array.from([
        ...b.subarray(0, at),
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0x7f,
        ...b.subarray(at),
      ]);
    else if (op === 6 && b.length > 2) {
      const from = Math.floor(rnd() * b.length);
      b = Uint8Array.from([
        ...b.subarray(0, at),
        ...b.subarray(from, from + 1 + Math.floor(rnd() * 16)),
        ...b.subarray(at),
      ]);
    } else if (b.length > 0)
      b[at % b.length] = [0x00, 0x7f, 0x80, 0xff, 0xc1, 0x10, 0x11, 0x13][Math.floor(rnd() * 8)]!;
  }
  return b;
}

/** Why the reference decoder disagrees with the gateway on `input`, or undefined when it agrees. */
function disagreement(ref: CloudDecoder, input: Uint8Array, got: Reading[] | CodecError): string | undefined {
  let want: unknown;
  try {
    want = ref.decodeReadings(input);
  } catch (err) {
    if (!isCloudError(err)) return `reference threw ${String(err)}`;
    if (got instanceof CodecError) {
      return got.code === err.code && got.offset === err.offset
        ? undefined
        : `gateway ${got.code} at ${got.offset}, reference ${err.code} at ${err.offset}`;
    }
    return `gateway decoded, reference ${err.code} at ${err.offset}`;
  }
  if (got instanceof CodecError) return `gateway ${got.code} at ${got.offset}, reference decoded`;
  return isDeepStrictEqual(got.map(withoutSource), want) ? undefined : 'different readings';
}

export function runFuzz(seed: number, count: number, reference?: CloudDecoder): FuzzReport {
  const rnd = prng(seed);
  const seeds: Uint8Array[] = VECTORS.map((v) => Buffer.from(v.hex, 'hex'));
  const report: FuzzReport = { cases: 0, decoded: 0, codecErrors: 0, byCode: {}, ms: 0, maxValuesPerBodyByte: 0 };
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    // Refresh the pool of valid messages now and then so mutations cover many shapes.
    if (i % 1000 === 0) {
      seeds.length = VECTORS.length;
      for (let k = 0; k < 20; k++) {
        seeds.push(rnd() < 0.5 ? encodeReading(randomReading(rnd)) : encodeBatch(randomBatch(rnd, 12)));
      }
    }
    const kind = rnd();
    let input: Uint8Array;
    if (kind < 0.1) {
      input = new Uint8Array(Math.floor(rnd() * 48)).map(() => Math.floor(rnd() * 256));
    } else if (kind < 0.25) {
      const tail = new Uint8Array(Math.floor(rnd() * 64)).map(() => Math.floor(rnd() * 256));
      input = Uint8Array.from([0xc1, 0x10 | Math.floor(rnd() * 4), ...tail]);
    } else if (kind < 0.35) {
      // Re-deflated mutated body: reaches the body parser through the inflate path.
      const src = seeds[Math.floor(rnd() * seeds.length)]!;
      const plain = (src[1]! & 0x02) === 0 ? src : undefined;
      const body = mutate(rnd, plain !== undefined ? plain.subarray(2) : src.subarray(2));
      const z = deflateRawSync(body);
      const len: number[] = [];
      for (let v = body.length; ; v = Math.floor(v / 128)) {
        if (v < 0x80) {
          len.push(v);
          break;
        }
        len.push((v & 0x7f) | 0x80);
      }
      input = Uint8Array.from([0xc1, 0x12 | (rnd() < 0.5 ? 1 : 0), ...len, ...z]);
    } else {
      input = mutate(rnd, seeds[Math.floor(rnd() * seeds.length)]!);
    }
    report.cases++;
    let out: Reading[];
    try {
      out = decode(input);
    } catch (err) {
      if (!(err instanceof CodecError)) {
        throw new Error(`case ${i} (seed ${seed}): ${String(err)} for input ${Buffer.from(input).toString('hex')}`, {
          cause: err,
        });
      }
      report.codecErrors++;
      report.byCode[err.code] = (report.byCode[err.code] ?? 0) + 1;
      const why = reference === undefined ? undefined : disagreement(reference, input, err);
      if (why !== undefined)
        throw new Error(`case ${i} (seed ${seed}): ${why} for ${Buffer.from(input).toString('hex')}`);
      continue;
    }
    const why = reference === undefined ? undefined : disagreement(reference, input, out);
    if (why !== undefined)
      throw new Error(`case ${i} (seed ${seed}): ${why} for ${Buffer.from(input).toString('hex')}`);
    report.decoded++;
    const body = Math.max(1, bodyBytes(input));
    let values = 0;
    for (const r of out) values += Object.keys(r.values).length;
    if (out.length > body / 2 + 1 || values > 8 * body) {
      throw new Error(`case ${i}: ${out.length} readings, ${values} values from a ${body} B body`);
    }
    report.maxValuesPerBodyByte = Math.max(report.maxValuesPerBodyByte, values / body);
  }
  report.ms = performance.now() - start;
  return report;
}
