/**
 * Full codec fuzz run (issue 5): ≥ 1,000,000 random and mutated inputs; only CodecError may come
 * out of the decoder, and output must stay within the stated bound. With `--reference`, every
 * input must also get the same outcome from the cloud example decoder (same readings, or the same
 * code at the same offset: docs/codec.md §Decoding order). `npm test` runs 50,000 + 30,000 of the
 * same cases (test/unit/codec/fuzz.test.ts).
 *
 *   npx tsc -p . && node dist/scripts/fuzz-codec.js [count=1000000] [seed=1] [--reference]
 */
import { runFuzz } from '../test/unit/codec/fuzz-core.js';
import { loadCloudDecoder } from '../test/unit/codec/helpers.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const count = Number(args[0] ?? 1_000_000);
const seed = Number(args[1] ?? 1);
const heapBefore = process.memoryUsage().heapUsed;
const reference = process.argv.includes('--reference') ? await loadCloudDecoder() : undefined;
const r = runFuzz(seed, count, reference);
const peakRss = process.resourceUsage().maxRSS * 1024; // kB → B: the process's peak, not a sample
console.log(
  `fuzz-codec: ${r.cases.toLocaleString('en-US')} inputs, seed ${seed}, node ${process.version}` +
    (reference ? ', compared with the cloud decoder (all agreed)' : ''),
);
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
