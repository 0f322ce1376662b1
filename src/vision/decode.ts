import sharp, { type OutputInfo } from 'sharp';
import { GatewayError } from '../errors.js';
import type { ModelContract } from './contract.js';
import type { RawFormat } from './types.js';

/** Global sharp settings for a long-running gateway (set once by the service). */
export function configureSharp(concurrency: number): void {
  // sharp issue 2607: on glibc, libvips' per-thread caches and many worker threads fragment the
  // heap of a long-running process (RSS grows for hours). One libvips thread per image and no
  // operation cache keep RSS flat; frames are never repeated, so the cache buys nothing here.
  sharp.concurrency(concurrency);
  sharp.cache(false);
}

export interface DecodeLimits {
  maxPixels: number;
}

/** A frame that cannot become a tensor: counted, and its part gets the fail-safe action. */
export class DecodeError extends GatewayError {
  constructor(message: string) {
    super('EGW_VISION_FRAME', message);
  }
}

/**
 * Decodes an image (JPEG, PNG, WebP, TIFF, GIF: whatever libvips reads) and resizes it to the
 * model's input as interleaved 8-bit pixels with the model's channel count.
 *
 * - Alpha is dropped (colour values kept as stored, not composited). When a resize happens,
 *   libvips resamples premultiplied, so a semi-transparent pixel may come back ±1.
 * - Greyscale input is replicated to R = G = B for a 3-channel model; colour input to a
 *   1-channel model is converted with libvips' sRGB → b-w (luminance in linear light, not Rec. 601
 *   luma of the gamma values: tens of levels apart on saturated colours).
 * - fit `fill` stretches to exactly W×H (aspect not kept, no border; the default: a camera over a
 *   belt is framed once and stretching keeps every pixel of the part); `cover` scales to cover and
 *   crops the centre; `contain` scales to fit and fills the border (centred; the extra pixel of an
 *   odd margin goes to the bottom/right) with `background`.
 * - The resize kernel is libvips' default lanczos3; a solid region stays exactly its colour.
 * - Raw pixels (`raw`, Frame.raw) skip decoding; at exactly the model's width, height and
 *   channels they are the model's pixels unchanged, otherwise they are resized as above.
 * - Decoded width × height above `maxPixels` is refused before any pixel is decoded
 *   (sharp limitInputPixels), so a 30000×30000 header cannot exhaust memory.
 */
export async function decodeForModel(
  img: Buffer,
  c: ModelContract,
  limits: DecodeLimits,
  raw?: RawFormat,
): Promise<Uint8Array> {
  if (raw) {
    checkRaw(img, raw, limits);
    // Raw pixels already at the model's input (a camera or ffmpeg delivering the model's size):
    // used as they are — no libvips at all, so the tensor is the hand computation on these bytes.
    // A copy: the caller's frame keeps its image (review folder) while the copy travels.
    if (raw.width === c.width && raw.height === c.height && raw.channels === c.channels) return new Uint8Array(img);
  }
  let s = sharp(img, {
    limitInputPixels: limits.maxPixels,
    failOn: 'truncated',
    sequentialRead: true,
    ...(raw ? { raw } : {}),
  }).removeAlpha();
  s = c.channels === 1 ? s.greyscale() : s.toColourspace('srgb');
  s = s.resize(c.width, c.height, {
    fit: c.fit,
    position: 'centre',
    background: { r: c.background[0], g: c.background[1], b: c.background[2], alpha: 1 },
  });
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await s.raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new DecodeError(err instanceof Error ? err.message : String(err));
  }
  const { data, info } = out;
  if (info.width !== c.width || info.height !== c.height || info.channels !== c.channels)
    throw new DecodeError(
      `decoded ${info.width}×${info.height}×${info.channels}; expected ${c.width}×${c.height}×${c.channels}`,
    );
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** Raw pixels as a PNG (lossless), for the review folder. */
export function encodeRawPng(img: Buffer, raw: RawFormat): Promise<Buffer> {
  return sharp(img, { raw }).png({ compressionLevel: 6 }).toBuffer();
}

/** Raw frames must hold exactly width × height × channels bytes (a short read is an error). */
function checkRaw(img: Buffer, raw: RawFormat, limits: DecodeLimits): void {
  const { width: w, height: h, channels: ch } = raw;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || (ch !== 1 && ch !== 3))
    throw new DecodeError(`raw frame format ${w}×${h}×${ch} is not valid`);
  if (w * h > limits.maxPixels) throw new DecodeError(`raw frame ${w}×${h} exceeds max_image_pixels`);
  if (img.length !== w * h * ch)
    throw new DecodeError(`raw frame has ${img.length} bytes; ${w}×${h}×${ch} = ${w * h * ch} expected`);
}
