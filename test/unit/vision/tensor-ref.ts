// The hand computation of the model's tensor, shared by the preprocessing tests (encoded and raw
// frames): written independently of contract.ts toTensor.
import assert from 'node:assert/strict';
import type { ModelContract } from '../../../src/vision/contract.js';

export const LIMITS = { maxPixels: 50_000_000 };

export function contract(over: Partial<ModelContract> = {}): ModelContract {
  return {
    inputName: 'x',
    outputName: 'y',
    layout: 'NCHW',
    width: 8,
    height: 6,
    channels: 3,
    scale: 1 / 255,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    labels: ['good', 'bad'],
    goodLabels: ['good'],
    fit: 'fill',
    background: [0, 0, 0],
    ...over,
  };
}

/**
 * For every tensor index, which pixel and channel it holds, and (p × scale − mean) / std evaluated
 * in double, rounded to float32 once.
 */
export function reference(c: ModelContract, px: (x: number, y: number, ch: number) => number): Float32Array {
  const { width: W, height: H, channels: C } = c;
  const out = new Float32Array(W * H * C);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let ch = 0; ch < C; ch++) {
        const idx = c.layout === 'NCHW' ? ch * H * W + y * W + x : (y * W + x) * C + ch;
        out[idx] = (px(x, y, ch) * c.scale - c.mean[ch]!) / c.std[ch]!;
      }
  return out;
}

export function assertTensorEqual(actual: Float32Array, expected: Float32Array): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++)
    if (actual[i] !== expected[i]) assert.fail(`element ${i}: ${actual[i]} !== ${expected[i]}`);
}
