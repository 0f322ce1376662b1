import type { VisionModelConfig } from './config.js';

/**
 * Everything the pipeline needs to feed one image classifier, resolved once at load from the
 * model's input shape, the config and the model's metadata_props (config wins over metadata).
 */
export interface ModelContract {
  inputName: string;
  outputName: string;
  layout: 'NCHW' | 'NHWC';
  width: number;
  height: number;
  /** 3 = RGB, 1 = greyscale. */
  channels: 1 | 3;
  /** value = (pixel × scale − mean[c]) / std[c] */
  scale: number;
  mean: number[];
  std: number[];
  labels: string[];
  goodLabels: string[];
  fit: 'fill' | 'cover' | 'contain';
  background: [number, number, number];
}

/** What onnxruntime tells about the model (InferenceSession.inputMetadata) plus its metadata_props. */
export interface ModelFacts {
  inputNames: readonly string[];
  outputNames: readonly string[];
  /** Input shape; a string or negative number is a dynamic dimension. */
  inputShape: readonly (number | string)[];
  metadata: Record<string, string>;
}

export class ContractError extends Error {}

const isDim = (d: number | string | undefined): d is number => typeof d === 'number' && d > 0;

function parseNumbers(s: string | undefined, key: string): number[] | undefined {
  if (s === undefined) return undefined;
  const parts = s
    .replace(/[[\]]/g, '')
    .split(/[,\s]+/)
    .filter((p) => p !== '');
  const nums = parts.map(Number);
  if (nums.length === 0 || nums.some((n) => !Number.isFinite(n)))
    throw new ContractError(`model metadata "${key}" is not a list of numbers: ${s}`);
  return nums;
}

function parseLabels(s: string | undefined): string[] | undefined {
  if (s === undefined) return undefined;
  const t = s.trim();
  if (t.startsWith('[')) {
    const v: unknown = JSON.parse(t);
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
      throw new ContractError('model metadata "labels" is not a JSON list of strings');
    return v as string[];
  }
  return t.split(/[,\n]/).map((x) => x.trim());
}

/** Broadcasts a 1-element list to every channel; refuses a length that fits neither. */
function perChannel(v: number[] | undefined, channels: number, def: number, key: string): number[] {
  if (v === undefined) return new Array<number>(channels).fill(def);
  if (v.length === 1) return new Array<number>(channels).fill(v[0]!);
  if (v.length !== channels) throw new ContractError(`${key} has ${v.length} values for ${channels} channels`);
  return v;
}

/**
 * Resolves the contract. Layout: config, else metadata "layout", else the dimension that is 1 or 3
 * at index 1 (NCHW) or 3 (NHWC); when both are, NCHW (the ONNX exporters' default).
 */
export function resolveContract(
  facts: ModelFacts,
  cfg: VisionModelConfig,
  labelsFromFile: string[] | undefined,
): ModelContract {
  if (facts.inputNames.length !== 1)
    throw new ContractError(`the model has ${facts.inputNames.length} inputs; a single-input classifier is needed`);
  if (facts.outputNames.length < 1) throw new ContractError('the model has no output');
  const shape = facts.inputShape;
  if (shape.length !== 4) throw new ContractError(`input rank ${shape.length}; expected 4 (NCHW or NHWC)`);
  const md = facts.metadata;
  let layout = cfg.layout ?? (md.layout === 'NCHW' || md.layout === 'NHWC' ? md.layout : undefined);
  if (layout === undefined) {
    const c1 = shape[1] === 3 || shape[1] === 1;
    const c3 = shape[3] === 3 || shape[3] === 1;
    if (c1) layout = 'NCHW';
    else if (c3) layout = 'NHWC';
    else throw new ContractError(`cannot tell the layout from input shape [${shape.join(',')}]; set model.layout`);
  }
  const [cDim, hDim, wDim] = layout === 'NCHW' ? [shape[1], shape[2], shape[3]] : [shape[3], shape[1], shape[2]];
  const channels = isDim(cDim) ? cDim : 3;
  if (channels !== 1 && channels !== 3) throw new ContractError(`the input has ${channels} channels; 1 or 3 needed`);
  const height = isDim(hDim) ? hDim : cfg.height;
  const width = isDim(wDim) ? wDim : cfg.width;
  if (height === undefined || width === undefined)
    throw new ContractError('the input height/width are dynamic; set model.width and model.height');
  if (isDim(hDim) && cfg.height !== undefined && cfg.height !== hDim)
    throw new ContractError(`model.height ${cfg.height} differs from the model's fixed ${hDim}`);
  if (isDim(wDim) && cfg.width !== undefined && cfg.width !== wDim)
    throw new ContractError(`model.width ${cfg.width} differs from the model's fixed ${wDim}`);
  const scale = cfg.scale ?? (md.scale !== undefined ? Number(md.scale) : 1 / 255);
  if (!Number.isFinite(scale) || scale <= 0) throw new ContractError(`bad pixel scale ${String(md.scale)}`);
  const mean = perChannel(cfg.mean ?? parseNumbers(md.mean, 'mean'), channels, 0, 'mean');
  const std = perChannel(cfg.std ?? parseNumbers(md.std, 'std'), channels, 1, 'std');
  if (std.some((s) => s === 0)) throw new ContractError('std has a zero');
  const labels = cfg.labels ?? labelsFromFile ?? parseLabels(md.labels);
  if (labels === undefined || labels.length === 0)
    throw new ContractError('no labels: set model.labels or model.labels_file, or add "labels" to the model metadata');
  const goodLabels = cfg.good_labels ?? parseLabels(md.good_labels) ?? ['good'];
  for (const g of goodLabels)
    if (!labels.includes(g)) throw new ContractError(`good label "${g}" is not among the labels`);
  const bg = cfg.background;
  return {
    inputName: facts.inputNames[0]!,
    outputName: facts.outputNames[0]!,
    layout,
    width,
    height,
    channels,
    scale,
    mean,
    std,
    labels: [...labels],
    goodLabels: [...goodLabels],
    fit: cfg.fit,
    background: [bg[0] ?? 0, bg[1] ?? 0, bg[2] ?? 0],
  };
}

/**
 * Interleaved 8-bit pixels (HWC, `channels` per pixel, exactly width×height) → the model's float
 * tensor. Each element is (p × scale − mean[c]) / std[c] evaluated in double and rounded once to
 * float32; a 256-entry table per channel holds exactly those values, so the result equals the
 * hand computation bit for bit.
 */
export function toTensor(pixels: Uint8Array, c: ModelContract, out?: Float32Array): Float32Array {
  const { width: W, height: H, channels: C } = c;
  const n = W * H;
  if (pixels.length !== n * C) throw new ContractError(`pixel buffer has ${pixels.length} bytes; ${n * C} expected`);
  const t = out ?? new Float32Array(n * C);
  const luts: Float32Array[] = [];
  for (let ch = 0; ch < C; ch++) {
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = (v * c.scale - c.mean[ch]!) / c.std[ch]!;
    luts.push(lut);
  }
  if (C === 1) {
    // One channel: both layouts are the same plane.
    const l0 = luts[0]!;
    for (let i = 0; i < n; i++) t[i] = l0[pixels[i]!]!;
  } else if (c.layout === 'NHWC') {
    const [l0, l1, l2] = luts as [Float32Array, Float32Array, Float32Array];
    for (let k = 0; k < 3 * n; k += 3) {
      t[k] = l0[pixels[k]!]!;
      t[k + 1] = l1[pixels[k + 1]!]!;
      t[k + 2] = l2[pixels[k + 2]!]!;
    }
  } else {
    // NCHW, three channels: one pass over the interleaved pixels writing the three planes (about
    // half the time of a pass per plane: each pixel's bytes are read once).
    const [l0, l1, l2] = luts as [Float32Array, Float32Array, Float32Array];
    const n2 = 2 * n;
    for (let i = 0, k = 0; i < n; i++, k += 3) {
      t[i] = l0[pixels[k]!]!;
      t[n + i] = l1[pixels[k + 1]!]!;
      t[n2 + i] = l2[pixels[k + 2]!]!;
    }
  }
  return t;
}

/** The tensor shape for one image. */
export function tensorDims(c: ModelContract): number[] {
  return c.layout === 'NCHW' ? [1, c.channels, c.height, c.width] : [1, c.height, c.width, c.channels];
}
