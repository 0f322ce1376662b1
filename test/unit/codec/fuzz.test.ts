import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './fuzz-core.js';

// 50,000 inputs here keep `npm test` fast; scripts/fuzz-codec.ts runs the full ≥ 1,000,000
// (figures in docs/codec.md). A fixed seed makes any failure reproducible.
test('fuzz: 50,000 random and mutated inputs raise nothing but CodecError, output within bounds', () => {
  const report = runFuzz(20241122, 50_000);
  assert.equal(report.cases, 50_000);
  assert.equal(report.decoded + report.codecErrors, report.cases);
  assert.ok(report.codecErrors > 25_000, 'most mutations are refused');
  assert.ok(report.decoded > 100, 'some mutations still decode (the fuzzer reaches deep)');
  assert.ok(report.maxValuesPerBodyByte <= 8);
});
