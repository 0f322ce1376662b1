import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * A CommonJS package loaded on first use rather than at start, so only configs that use it pay
 * for it in memory (serial, Modbus, DTLS and CBOR libraries: ~2 MB of heap and their code, measured
 * with scripts/bench-footprint.ts). `T` is the package's type (`typeof import('pkg')`).
 */
export function lazyRequire<T>(specifier: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= require(specifier) as T);
}
