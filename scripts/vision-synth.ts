/**
 * Synthetic parts for the demo defect classifier, drawn with sharp (SVG → librsvg, bundled in
 * sharp's prebuilt libvips): a round metal part on a belt, good or with a scratch, a spot or a
 * chip. Deterministic for a seed. Used by scripts/vision-make-models.ts (training data), the tests
 * (held-out sets) and the demo folder.
 *
 *   node dist/scripts/vision-synth.js OUT_DIR COUNT_PER_CLASS [SEED]   # writes PNGs (demo folder)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { mulberry32 } from '../src/drivers/simulated/signal.js';

export const DEMO_LABELS = ['good', 'scratch', 'spot', 'chip'] as const;
export type DemoLabel = (typeof DEMO_LABELS)[number];

/** The project's seedable PRNG (mulberry32), so runs repeat from the seed. */
export const rng = mulberry32;

const f = (n: number) => n.toFixed(2);

/** One part as an SVG document of `size`×`size` pixels. */
export function partSvg(label: DemoLabel, r: () => number, size = 128): string {
  const u = (a: number, b: number) => a + (b - a) * r();
  const belt = Math.round(u(40, 80));
  const metal = Math.round(u(150, 200));
  const cx = size / 2 + u(-6, 6);
  const cy = size / 2 + u(-6, 6);
  const rad = size * u(0.3, 0.36);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}">`,
    `<rect width="100%" height="100%" fill="rgb(${belt},${belt},${belt + 5})"/>`,
    `<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(rad)}" fill="rgb(${metal},${metal},${metal - 10})"/>`,
    `<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(rad * 0.25)}" fill="rgb(${belt},${belt},${belt + 5})"/>`,
  ];
  // Texture every class shares, so the classes differ only by the defect.
  for (let i = 0; i < 6; i++) {
    const a = u(0, 2 * Math.PI);
    const d = u(rad * 0.35, rad * 0.9);
    const g = Math.round(metal + u(-12, 12));
    parts.push(
      `<circle cx="${f(cx + d * Math.cos(a))}" cy="${f(cy + d * Math.sin(a))}" r="${f(u(1, 3))}" fill="rgb(${g},${g},${g})"/>`,
    );
  }
  if (label === 'scratch') {
    const a = u(0, Math.PI);
    const len = u(rad * 0.6, rad * 1.2);
    const ox = cx + u(-rad, rad) * 0.4;
    const oy = cy + u(-rad, rad) * 0.4;
    const dark = Math.round(u(40, 80));
    parts.push(
      `<line x1="${f(ox - (len / 2) * Math.cos(a))}" y1="${f(oy - (len / 2) * Math.sin(a))}" x2="${f(ox + (len / 2) * Math.cos(a))}" y2="${f(oy + (len / 2) * Math.sin(a))}" stroke="rgb(${dark},${dark},${dark})" stroke-width="${f(u(2.0, 3.0))}"/>`,
    );
  } else if (label === 'spot') {
    const a = u(0, 2 * Math.PI);
    const d = u(rad * 0.45, rad * 0.8);
    const c = r() < 0.5 ? `rgb(${Math.round(u(90, 120))},${Math.round(u(50, 70))},20)` : 'rgb(30,30,30)';
    parts.push(
      `<circle cx="${f(cx + d * Math.cos(a))}" cy="${f(cy + d * Math.sin(a))}" r="${f(u(5, 9))}" fill="${c}"/>`,
    );
  } else if (label === 'chip') {
    // A notch bitten out of the rim: a belt-coloured triangle straddling the edge.
    const a = u(0, 2 * Math.PI);
    const w = u(0.25, 0.45);
    const p = (ang: number, d: number) => `${f(cx + d * Math.cos(ang))},${f(cy + d * Math.sin(ang))}`;
    parts.push(
      `<polygon points="${p(a - w, rad * 1.1)} ${p(a, rad * u(0.6, 0.75))} ${p(a + w, rad * 1.1)}" fill="rgb(${belt},${belt},${belt + 5})"/>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

/** One part as a PNG. */
export function partPng(label: DemoLabel, r: () => number, size = 128): Promise<Buffer> {
  return sharp(Buffer.from(partSvg(label, r, size)))
    .png()
    .toBuffer();
}

/** `count` parts of each label in a fixed interleaved order. */
export async function* parts(
  countPerClass: number,
  seed: number,
  size = 128,
): AsyncGenerator<{ label: DemoLabel; png: Buffer; index: number }> {
  const r = rng(seed);
  let index = 0;
  for (let i = 0; i < countPerClass; i++)
    for (const label of DEMO_LABELS) yield { label, png: await partPng(label, r, size), index: index++ };
}

async function main(): Promise<void> {
  const [out, n, seed] = process.argv.slice(2);
  if (!out || !n) {
    console.error('usage: vision-synth OUT_DIR COUNT_PER_CLASS [SEED]');
    process.exit(2);
  }
  mkdirSync(out, { recursive: true });
  for await (const p of parts(Number(n), Number(seed ?? 7)))
    writeFileSync(join(out, `part-${String(p.index).padStart(4, '0')}-${p.label}.png`), p.png);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
