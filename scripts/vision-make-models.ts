/**
 * Makes the vision models. Weights cannot be downloaded, so the project trains its own:
 *
 *   npm run build && node dist/scripts/vision-make-models.js demo        # → test/fixtures/vision/demo-defects.onnx
 *   node dist/scripts/vision-make-models.js mobilenetv2 [OUT]            # → data/vision/mobilenetv2-random.onnx (timing)
 *
 * The demo set is drawn by scripts/vision-synth.ts and decoded by src/vision/decode.ts, the very
 * path frames take at run time, then scripts/vision-train.py (Debian python3-torch, python3-onnx)
 * trains a 4-class CNN deterministically (< 2 min on one core) and exports ONNX with labels,
 * mean, std and layout in its metadata.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelContract } from '../src/vision/contract.js';
import { decodeForModel } from '../src/vision/decode.js';
import { DEMO_LABELS, parts } from './vision-synth.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PY = '/usr/bin/python3';

export const DEMO_CONTRACT: ModelContract = {
  inputName: 'image',
  outputName: 'logits',
  layout: 'NCHW',
  width: 64,
  height: 64,
  channels: 3,
  scale: 1 / 255,
  mean: [0.5, 0.5, 0.5],
  std: [0.25, 0.25, 0.25],
  labels: [...DEMO_LABELS],
  goodLabels: ['good'],
  fit: 'fill',
  background: [0, 0, 0],
};

async function dataset(dir: string, name: string, perClass: number, seed: number): Promise<void> {
  const px: Uint8Array[] = [];
  const labels: number[] = [];
  for await (const p of parts(perClass, seed)) {
    px.push(await decodeForModel(p.png, DEMO_CONTRACT, { maxPixels: 1e8 }));
    labels.push(DEMO_LABELS.indexOf(p.label));
  }
  writeFileSync(join(dir, `${name}.u8`), Buffer.concat(px));
  writeFileSync(join(dir, `${name}.labels`), Uint8Array.from(labels));
}

function py(args: string[]): void {
  const r = spawnSync(PY, [join(repo, 'scripts', 'vision-train.py'), ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`vision-train.py failed (${r.status ?? r.signal})`);
}

async function main(): Promise<void> {
  const what = process.argv[2] ?? 'demo';
  if (what === 'mobilenetv2') {
    const out = process.argv[3] ?? join(repo, 'data', 'vision', 'mobilenetv2-random.onnx');
    mkdirSync(dirname(out), { recursive: true });
    py(['mobilenetv2', out]);
    console.log(out);
    return;
  }
  const tmp = join(repo, '.tmp', 'vision-train');
  mkdirSync(tmp, { recursive: true });
  const t0 = Date.now();
  await dataset(tmp, 'train', 400, 1);
  await dataset(tmp, 'val', 100, 2);
  console.log(`drew ${4 * 500} parts in ${Date.now() - t0} ms`);
  const out = process.argv[3] ?? join(repo, 'test', 'fixtures', 'vision', 'demo-defects.onnx');
  mkdirSync(dirname(out), { recursive: true });
  py(['demo', tmp, out]);
  console.log(out);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
