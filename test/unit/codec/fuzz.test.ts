import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './fuzz-core.js';
import { loadCloudDecoder } from './helpers.js';

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

test('fuzz: 30,000 inputs get the same outcome from the gateway and the cloud decoder (same readings, or same code at the same offset)', async () => {
  // The cloud decoder is written from docs/codec.md alone: agreement on every input is what makes
  // the spec's order of checks and offsets precise enough to build an interoperable decoder.
  const report = runFuzz(7, 30_000, await loadCloudDecoder());
  assert.equal(report.cases, 30_000);
  assert.ok(report.decoded > 100 && report.codecErrors > 15_000);
});
