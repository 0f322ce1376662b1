import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { CodecError, decode, encodeBatch } from '../../../src/codec/index.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { prng } from './helpers.js';

// Node's zlib keeps ~5–9 KB of native memory per corrupt stream it rejects, and GC never returns
// it (20,000 streams → +100–180 MB RSS). The decoder inflates in pure JS (src/codec/inflate.ts):
// this is a memory bound, not a timing one — generous, so GC timing on a loaded machine can't trip it.
const COUNT = 20_000;
const BOUND_MB = 60;

function inflateCode(m: Uint8Array): string {
  try {
    decode(m);
    return 'decoded';
  } catch (err) {
    return err instanceof CodecError ? err.code : String(err);
  }
}

function corruptMessages(): Uint8Array[] {
  const rnd = prng(5);
  const readings: Reading[] = Array.from({ length: 40 }, (_, i) => ({
    deviceId: 'press-07-line-b',
    ts: 1_732_262_400_000 + i * 1000,
    values: { temperature: 20 + i / 10, humidity: 45.1, online: true },
    quality: 'good',
    source: 'mqtt',
  }));
  const small = encodeBatch(readings);
  assert.equal(small[1]! & 0x02, 0x02);
  // A longer stream (6 KB, stored and dynamic blocks) too.
  const body = Buffer.alloc(6000);
  for (let i = 0; i < body.length; i++) body[i] = Math.floor(rnd() * 256);
  const bigZ = deflateRawSync(body);
  const big = Buffer.concat([Buffer.from([0xc1, 0x12, 0xf0, 0x2e]), bigZ]); // declares 6000 B
  const out: Uint8Array[] = [];
  for (let k = 0; out.length < 64 && k < 10_000; k++) {
    const src = k % 16 === 0 ? big : small;
    const b = Uint8Array.from(src);
    const kind = k % 4;
    let m: Uint8Array = b;
    if (kind === 0)
      m = b.subarray(0, 4 + Math.floor(rnd() * (b.length - 5))); // truncated
    else if (kind === 1)
      for (let j = 5; j < b.length; j += 7) b[j] = Math.floor(rnd() * 256); // garbage
    else b[4 + Math.floor(rnd() * (b.length - 4))]! ^= 1 << Math.floor(rnd() * 8); // one bit flipped
    // Keep only streams the inflater itself rejects: those are what leaked with node:zlib.
    if (inflateCode(m) === 'EGW_CODEC_INFLATE') out.push(m);
  }
  assert.equal(out.length, 64);
  return out;
}

test(`inflate: ${COUNT.toLocaleString('en-US')} corrupt deflate messages grow RSS by less than ${BOUND_MB} MB`, () => {
  const msgs = corruptMessages();
  let refused = 0;
  const run = (n: number): void => {
    for (let i = 0; i < n; i++) if (inflateCode(msgs[i % msgs.length]!) === 'EGW_CODEC_INFLATE') refused++;
  };
  run(1000); // warm-up: code, scratch buffers and heap settle before the baseline
  const before = process.memoryUsage().rss;
  refused = 0;
  run(COUNT);
  const grownMb = (process.memoryUsage().rss - before) / 1e6;
  assert.equal(refused, COUNT, 'every input is refused by the inflater');
  assert.ok(grownMb < BOUND_MB, `RSS grew ${grownMb.toFixed(1)} MB over ${COUNT} corrupt messages`);
});
