import { Inflate, inflateSync } from 'fflate';
import { CodecError } from './errors.js';

/**
 * Bounded raw inflate (RFC 1951) for the decode path, in pure JavaScript (fflate).
 *
 * Why not node:zlib: each corrupt or truncated stream that Node's zlib rejects keeps ~5–9 KB of
 * native memory that GC never returns (100,000 bad streams → +500–900 MB RSS, measured on Node
 * 20.20); the gateway decodes untrusted payloads for months on boards with little RAM. fflate
 * allocates only JS memory, which GC returns (100,000 corrupt streams → +10 MB, measured).
 *
 * Bounds:
 * - memory: the output buffer is declared length + 1 bytes; fflate never grows a buffer it is
 *   given (typed-array writes past its end are dropped), so a result of declared + 1 bytes means
 *   "inflates past its declared length" without ever holding more.
 * - CPU: fflate does not stop when that buffer is full — it runs the stream to its end, and raw
 *   deflate expands up to ~1032× (64 KiB of input → 64 MiB of output ≈ 0.2 s). So only short
 *   streams (≤ ONE_SHOT_MAX input bytes: ≤ ~0.5 MB of work) are inflated in one call; longer ones
 *   are pushed in ONE_SHOT_MAX-byte slices through the streaming inflater, which is stopped as
 *   soon as the output passes the declared length: at most one slice of overshoot.
 */
export const ONE_SHOT_MAX = 512;

/** Output bodies up to this size are inflated into one reused scratch buffer (decode is synchronous). */
const SCRATCH_MAX = 64 * 1024;
let scratch = new Uint8Array(4096);

class Overflow extends Error {}

/**
 * Inflates `z` (a raw deflate stream that takes the rest of the message) into exactly `len` bytes.
 * The result may be a view of a scratch buffer that the next call overwrites: read it before then.
 * Bytes after the stream's final block are not looked at (docs/codec.md §Envelope).
 * Throws CodecError EGW_CODEC_INFLATE for a corrupt stream or any length other than `len`.
 */
export function inflateBody(z: Uint8Array, len: number, at: number): Uint8Array {
  if (z.length === 0) throw new CodecError('EGW_CODEC_INFLATE', 'no deflate stream after the inflated length', at);
  let body: Uint8Array;
  try {
    body = z.length <= ONE_SHOT_MAX ? oneShot(z, len) : sliced(z, len);
  } catch (err) {
    if (err instanceof Overflow) {
      throw new CodecError('EGW_CODEC_INFLATE', `deflate stream inflates past its declared ${len} B`, at);
    }
    throw new CodecError('EGW_CODEC_INFLATE', 'deflate stream is corrupt or truncated', at, { cause: err });
  }
  if (body.length !== len) {
    const what = body.length > len ? `past its declared ${len} B` : `to ${body.length} B, header declares ${len} B`;
    throw new CodecError('EGW_CODEC_INFLATE', `deflate stream inflates ${what}`, at);
  }
  return body;
}

function oneShot(z: Uint8Array, len: number): Uint8Array {
  let out: Uint8Array;
  if (len + 1 <= SCRATCH_MAX) {
    if (scratch.length < len + 1)
      scratch = new Uint8Array(Math.min(SCRATCH_MAX, Math.max(len + 1, scratch.length * 2)));
    out = scratch.subarray(0, len + 1);
  } else out = new Uint8Array(len + 1);
  // Returns a view of `out` of min(produced, len + 1) bytes.
  return inflateSync(z, { out });
}

function sliced(z: Uint8Array, len: number): Uint8Array {
  const body = new Uint8Array(len);
  let got = 0;
  const inf = new Inflate((chunk: Uint8Array) => {
    if (got + chunk.length > len) throw new Overflow();
    body.set(chunk, got);
    got += chunk.length;
  });
  for (let p = 0; p < z.length; p += ONE_SHOT_MAX) {
    const end = Math.min(z.length, p + ONE_SHOT_MAX);
    inf.push(z.subarray(p, end), end === z.length);
  }
  return body.subarray(0, got);
}
