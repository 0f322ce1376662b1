/**
 * Full codec fuzz run (issue 5): ≥ 1,000,000 random and mutated inputs; only CodecError may come
 * out of the decoder, and output must stay within the stated bound. `npm test` runs 50,000 of the
 * same cases (test/unit/codec/fuzz.test.ts).
 *
 *   npx tsc -p . && node dist/scripts/fuzz-codec.js [count=1000000] [seed=1]
 */
import { runFuzz } from '../test/unit/codec/fuzz-core.js';

const count = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? 1);
const heapBefore = process.memoryUsage().heapUsed;
const r = runFuzz(seed, count);
const peakRss = process.resourceUsage().maxRSS * 1024; // kB → B: the process's peak, not a sample
console.log(`fuzz-codec: ${r.cases.toLocaleString('en-US')} inputs, seed ${seed}, node ${process.version}`);
console.log(
  `  ${(r.ms / 1000).toFixed(1)} s (${Math.round((r.cases / r.ms) * 1000).toLocaleString('en-US')} inputs/s)`,
);
console.log(
  `  decoded ${r.decoded.toLocaleString('en-US')}, CodecError ${r.codecErrors.toLocaleString('en-US')}, other exceptions 0`,
);
console.log(`  max values per body byte ${r.maxValuesPerBodyByte.toFixed(2)} (bound 8)`);
console.log(
  `  peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB, heap growth ${((process.memoryUsage().heapUsed - heapBefore) / 2 ** 20).toFixed(1)} MiB`,
);
for (const [code, n] of Object.entries(r.byCode).sort((a, b) => b[1] - a[1])) {
  console.log(`  ${code.padEnd(22)} ${n.toLocaleString('en-US')}`);
}
