import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import type { Reading } from '../../../src/pipeline/reading.js';

/** Repository root: tests run from dist/test/unit/codec/. */
export const ROOT = resolve(new URL('../../../..', import.meta.url).pathname);

export type CloudReading = Omit<Reading, 'source'>;
export interface CloudDecoder {
  decodeReadings(bytes: Uint8Array): CloudReading[];
}

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

/** Small deterministic PRNG (mulberry32) so property and fuzz failures reproduce from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
