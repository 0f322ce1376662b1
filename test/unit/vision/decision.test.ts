import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decide, softmax, topScores } from '../../../src/vision/decision.js';
import { readOnnxMetadata } from '../../../src/vision/onnx-metadata.js';
import { ReviewStore, imageExt } from '../../../src/vision/review.js';
import { JpegSplitter } from '../../../src/vision/sources/ffmpeg.js';
import { Reservoir } from '../../../src/vision/stats.js';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const policy = {
  labels: ['good', 'scratch', 'chip'],
  goodLabels: ['good'],
  defectThresholds: { chip: 0.3 },
  defaultDefectThreshold: 0.5,
  uncertainBelow: 0.6,
};

test('softmax is stable for large logits and sums to 1', () => {
  const p = softmax([1000, 1000, 999]);
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  assert.equal(p[0], p[1]);
  const e = Math.exp(-1);
  assert.ok(Math.abs(p[2]! - e / (2 + e)) < 1e-15);
});

test('verdicts: good, defective by per-label threshold (even under a good top), uncertain', () => {
  const ln = Math.log;
  assert.equal(decide([ln(0.9), ln(0.05), ln(0.05)], policy).verdict, 'good');
  const d = decide([ln(0.6), ln(0.05), ln(0.35)], policy);
  assert.deepEqual([d.verdict, d.label], ['defective', 'chip']);
  assert.ok(Math.abs(d.confidence - 0.35) < 1e-12);
  // scratch 0.45 < its default threshold 0.5 and good 0.55 < uncertain_below 0.6: uncertain.
  const u = decide([ln(0.55), ln(0.45), ln(1e-9)], policy);
  assert.deepEqual([u.verdict, u.label], ['uncertain', 'good']);
  const s = decide([ln(0.2), ln(0.8), ln(1e-9)], policy);
  assert.deepEqual([s.verdict, s.label], ['defective', 'scratch']);
  assert.throws(() => decide([1, 2], policy), /2 scores for 3 labels/);
});

test('ONNX metadata_props are read from the demo model; hostile bytes throw, not hang', () => {
  const md = readOnnxMetadata(readFileSync(join(process.cwd(), 'test', 'fixtures', 'vision', 'demo-defects.onnx')));
  assert.equal(md.labels, '["good", "scratch", "spot", "chip"]');
  assert.equal(md.layout, 'NCHW');
  assert.throws(() => readOnnxMetadata(Uint8Array.from([0x72, 0xff, 0xff, 0xff, 0xff, 0x0f])), /truncated/);
  assert.throws(() => readOnnxMetadata(Uint8Array.from([0x0f])), /wire type/);
  assert.throws(() => readOnnxMetadata(Uint8Array.from(new Array(12).fill(0xff))), /varint/);
  assert.deepEqual(readOnnxMetadata(new Uint8Array(0)), {});
});

test('review store: count and byte quotas, oldest first out, writes counted, survives restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-review-'));
  try {
    const r = new ReviewStore(dir, 250, 3);
    for (let i = 0; i < 5; i++)
      assert.ok(r.save(1000 + i, 'cam', `f${i}.png`, 'defective', new Uint8Array(60), '.png'));
    assert.equal(r.stats.files, 3);
    assert.equal(r.stats.writes, 5);
    assert.equal(r.stats.evicted, 2);
    assert.deepEqual(
      r.list().map((e) => e.file.split('-').pop()),
      ['f4.png', 'f3.png', 'f2.png'],
    );
    assert.ok(r.save(2000, 'cam', 'big', 'uncertain', new Uint8Array(200), '.jpg'));
    assert.equal(r.stats.bytes, 200);
    assert.equal(readdirSync(dir).length, 1);
    assert.equal(r.save(3000, 'cam', 'huge', 'defective', new Uint8Array(300), '.jpg'), false);
    writeFileSync(join(dir, '00000000000001-old-x.png'), new Uint8Array(100));
    const again = new ReviewStore(dir, 250, 3);
    assert.equal(again.stats.files, 1, 'the restart evicts the oldest to fit the quota');
    assert.equal(imageExt(Uint8Array.from([0xff, 0xd8])), '.jpg');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('JPEG splitter: frames across chunk borders, garbage between, bounded buffer', () => {
  const a = Buffer.from([0xff, 0xd8, 1, 2, 0xff, 0x00, 3, 0xff, 0xd9]);
  const b = Buffer.from([0xff, 0xd8, 9, 0xff, 0xd9]);
  const s = new JpegSplitter(1000);
  const stream = Buffer.concat([Buffer.from([7, 7]), a, Buffer.from([5]), b]);
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 3) out.push(...s.push(stream.subarray(i, i + 3)));
  assert.deepEqual(out, [a, b]);
  const small = new JpegSplitter(10);
  assert.deepEqual(small.push(Buffer.concat([Buffer.from([0xff, 0xd8]), Buffer.alloc(20)])), []);
  assert.deepEqual(small.push(b), [b]);
});

test('reservoir percentiles (nearest rank) over the last N', () => {
  const r = new Reservoir(100);
  for (let i = 1; i <= 200; i++) r.add(i);
  assert.deepEqual(r.percentiles(), { p50: 150, p95: 195, p99: 199 });
  assert.deepEqual(new Reservoir().percentiles([50]), { p50: null });
});

test('result scores: the N most probable labels, highest first; all when N is 0 or covers them', () => {
  const labels = Array.from({ length: 1000 }, (_, i) => `c${i}`);
  const probs = Array.from({ length: 1000 }, (_, i) => ((i * 7919) % 1000) / 500000);
  const ref = probs
    .map((p, i) => [labels[i]!, p] as const)
    .sort((a, b) => b[1] - a[1] || labels.indexOf(a[0]) - labels.indexOf(b[0]));
  for (const n of [1, 3, 10, 999]) assert.deepEqual(Object.entries(topScores(probs, labels, n)), ref.slice(0, n));
  assert.deepEqual(Object.entries(topScores(probs, labels, 0)), ref);
  assert.deepEqual(Object.entries(topScores(probs, labels, 5000)), ref);
  // Ties keep label order.
  assert.deepEqual(Object.keys(topScores([0.25, 0.25, 0.25, 0.25], ['a', 'b', 'c', 'd'], 2)), ['a', 'b']);
  // The decision itself does not depend on N: a defect label outside the reported scores still rejects.
  const many = Array.from({ length: 20 }, (_, i) => (i === 19 ? 'chip' : `good${i}`));
  const logits = many.map((l) => (l === 'chip' ? Math.log(0.3) : Math.log(0.7 / 19)));
  const d = decide(logits, {
    labels: many,
    goodLabels: many.filter((l) => l !== 'chip'),
    defectThresholds: {},
    defaultDefectThreshold: 0.25,
    uncertainBelow: 0.5,
    topScores: 1,
  });
  assert.equal(d.verdict, 'defective');
  assert.deepEqual(Object.keys(d.scores), ['chip']);
});
