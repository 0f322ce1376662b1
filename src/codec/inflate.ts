import { CodecError } from './errors.js';

/**
 * Strict, bounded raw inflate (RFC 1951) for the decode path, in pure JavaScript.
 *
 * Why not a library: node:zlib keeps ~5–9 KB of native memory per corrupt stream it rejects,
 * which GC never returns (docs/codec.md §Deflate on the decode path), and fflate — used here
 * before — accepts streams that RFC 1951 and zlib refuse (distance codes 30–31 in fixed blocks,
 * e.g. `63 00 7e 00`; literal/length codes 286–287; over-subscribed and incomplete Huffman codes;
 * stored blocks whose NLEN is not the complement of LEN), so two decoders would disagree on which
 * messages are valid. This follows Mark Adler's puff.c (zlib/contrib/puff), the reference
 * decoder written to refuse exactly what zlib refuses, and inherits its bounds:
 *
 * - memory: output goes into a buffer of exactly the declared length; one byte more is refused
 *   on the spot ("inflates past its declared length"), so nothing is ever held beyond it;
 * - CPU: stopping there bounds the copying to the declared length; everything else is at most
 *   a constant amount of work per input bit (Huffman decoding walks ≤ 15 bits per symbol, a
 *   dynamic block header builds its codes from ≤ 320 lengths), and it never recurses.
 */

const MAXBITS = 15;
const MAXLCODES = 286; // literal/length symbols 0–285 (RFC 1951 §3.2.5); 286–287 never occur
const MAXDCODES = 30; // distance symbols 0–29; 30–31 never occur (§3.2.6)
const FIXLCODES = 288;

// Base values and extra bits of length symbols 257–285 and distance symbols 0–29 (§3.2.5).
// prettier-ignore
const LBASE = Uint16Array.of(3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258);
// prettier-ignore
const LEXT = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0);
// prettier-ignore
const DBASE = Uint16Array.of(1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577);
// prettier-ignore
const DEXT = Uint8Array.of(0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13);
/** Order of the code-length code's lengths in a dynamic block header (§3.2.7). */
const ORDER = Uint8Array.of(16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15);

/** Codes up to this many bits are decoded by one table lookup; longer ones bit by bit. */
const FAST = 9;
const FAST_MASK = (1 << FAST) - 1;

/** Canonical Huffman code: number of codes of each length, and symbols ordered by code. */
interface Huffman {
  count: Uint16Array;
  symbol: Uint16Array;
  /** Longest code length: a bit pattern still unmatched after it is no code at all. */
  max: number;
  /**
   * The next FAST input bits (least significant first) → (symbol << 4) | code length, or 0 when
   * they start no code of ≤ FAST bits. 512 entries: rebuilding it costs a dynamic block a bounded
   * amount of work (fflate's tables grow to 2^15 entries per block).
   */
  fast: Uint16Array;
}
const huffman = (n: number): Huffman => ({
  count: new Uint16Array(MAXBITS + 1),
  symbol: new Uint16Array(n),
  max: 0,
  fast: new Uint16Array(1 << FAST),
});

class Bad extends Error {}
class Overflow extends Error {}
class Truncated extends Error {}

// Decoder state: inflate is synchronous and not reentrant, so one set serves every call.
/** Bit reader state; an object's fields, because module-level lets cost a hole check per access. */
class BitState {
  inp: Uint8Array = new Uint8Array(0);
  inPos = 0;
  bitbuf = 0;
  bitcnt = 0;
}
const R = new BitState();
let out: Uint8Array = new Uint8Array(0);
let outPos = 0;
const lengths = new Uint8Array(MAXLCODES + MAXDCODES);
const lencode = huffman(MAXLCODES);
const distcode = huffman(MAXDCODES);
const fixedLen = huffman(FIXLCODES);
const fixedDist = huffman(MAXDCODES);
const offs = new Uint16Array(MAXBITS + 1);

/** `need` (≤ 13) bits, least significant first (§3.1.1). */
function bits(need: number): number {
  let val = R.bitbuf;
  let cnt = R.bitcnt;
  if (cnt < need) {
    const inp = R.inp;
    let p = R.inPos;
    while (cnt < need) {
      if (p >= inp.length) throw new Truncated();
      val |= inp[p++]! << cnt;
      cnt += 8;
    }
    R.inPos = p;
  }
  R.bitbuf = val >>> need;
  R.bitcnt = cnt - need;
  return val & ((1 << need) - 1);
}

/**
 * Builds `h` from code lengths `len[at … at + n)`. Returns 0 for a complete code, > 0 for an
 * incomplete one (codes left unused), < 0 for an over-subscribed one (puff.c construct()).
 */
function construct(h: Huffman, len: Uint8Array, at: number, n: number): number {
  const count = h.count;
  count.fill(0);
  for (let s = 0; s < n; s++) count[len[at + s]!]!++;
  let max = MAXBITS;
  while (max > 0 && count[max] === 0) max--;
  h.max = max;
  if (count[0] === n) {
    h.fast.fill(0); // no codes: complete, but decoding any symbol fails (no stale entries either)
    return 0;
  }
  let left = 1;
  for (let l = 1; l <= MAXBITS; l++) {
    left <<= 1;
    left -= count[l]!;
    if (left < 0) return left;
  }
  offs[1] = 0;
  for (let l = 1; l < MAXBITS; l++) offs[l + 1] = offs[l]! + count[l]!;
  for (let s = 0; s < n; s++) if (len[at + s] !== 0) h.symbol[offs[len[at + s]!]!++] = s;
  if (left >= 0) fillFast(h);
  return left;
}

/** FAST-bit reversal: Huffman codes are sent most significant bit first (§3.1.1). */
const REV = new Uint16Array(1 << FAST);
for (let x = 0; x <= FAST_MASK; x++) for (let b = 0; b < FAST; b++) REV[x]! |= ((x >> b) & 1) << (FAST - 1 - b);

/** Lookup table of the codes of ≤ FAST bits: canonical codes in symbol order (§3.2.2), bit-reversed. */
function fillFast(h: Huffman): void {
  const fast = h.fast;
  fast.fill(0);
  let code = 0;
  let index = 0;
  for (let l = 1; l <= FAST; l++) {
    for (let k = h.count[l]!; k > 0; k--) {
      const rev = REV[code << (FAST - l)]!;
      const entry = (h.symbol[index++]! << 4) | l;
      for (let j = rev; j <= FAST_MASK; j += 1 << l) fast[j] = entry;
      code++;
    }
    code <<= 1;
  }
}

/**
 * Decodes one symbol (Huffman codes are packed most significant bit first, §3.1.1). A pattern
 * that is no code of `h` fails as soon as it is longer than the longest code, as in zlib.
 */
function decodeSym(h: Huffman, what: string): number {
  // Fast path: look the next FAST bits up (fewer near the end of the input: then the entry's code
  // length must fit in what is there).
  let buf = R.bitbuf;
  let cnt = R.bitcnt;
  if (cnt < FAST) {
    const inp = R.inp;
    let p = R.inPos;
    while (cnt < FAST && p < inp.length) {
      buf |= inp[p++]! << cnt;
      cnt += 8;
    }
    R.inPos = p;
  }
  const e = h.fast[buf & FAST_MASK]!;
  if (e !== 0 && (e & 15) <= cnt) {
    R.bitbuf = buf >>> (e & 15);
    R.bitcnt = cnt - (e & 15);
    return e >> 4;
  }
  R.bitbuf = buf;
  R.bitcnt = cnt;
  const count = h.count;
  const max = h.max;
  let code = 0;
  let first = 0;
  let index = 0;
  for (let len = 1; len <= max; len++) {
    if (R.bitcnt === 0) {
      if (R.inPos >= R.inp.length) throw new Truncated();
      R.bitbuf = R.inp[R.inPos++]!;
      R.bitcnt = 8;
    }
    code |= R.bitbuf & 1;
    R.bitbuf >>>= 1;
    R.bitcnt--;
    const c = count[len]!;
    if (code - c < first) return h.symbol[index + (code - first)]!;
    index += c;
    first += c;
    first <<= 1;
    code <<= 1;
  }
  throw new Bad(`invalid ${what} code`);
}

function codes(lc: Huffman, dc: Huffman): void {
  const o = out;
  const end = o.length;
  let op = outPos; // a local in the hot loop (module-level lets cost a hole check per access)
  try {
    for (;;) {
      let sym = decodeSym(lc, 'literal/length');
      if (sym < 256) {
        if (op >= end) throw new Overflow();
        o[op++] = sym;
        continue;
      }
      if (sym === 256) return;
      sym -= 257;
      if (sym >= 29) throw new Bad('invalid literal/length code (286–287)');
      const len = LBASE[sym]! + bits(LEXT[sym]!);
      const ds = decodeSym(dc, 'distance');
      // Fixed blocks give distance symbols 30–31 5-bit codes that have no meaning (§3.2.6): the
      // fixed distance code is built with 30 symbols only, so they fail in decodeSym.
      const dist = DBASE[ds]! + bits(DEXT[ds]!);
      if (dist > op) throw new Bad('distance too far back');
      if (op + len > end) throw new Overflow();
      for (const stop = op + len; op < stop; op++) o[op] = o[op - dist]!;
    }
  } finally {
    outPos = op;
  }
}

function stored(): void {
  // Skip to a byte boundary (§3.2.4): whole bytes read ahead into R.bitbuf go back to the input.
  R.inPos -= R.bitcnt >> 3;
  R.bitbuf = 0;
  R.bitcnt = 0;
  if (R.inPos + 4 > R.inp.length) throw new Truncated();
  const len = R.inp[R.inPos]! | (R.inp[R.inPos + 1]! << 8);
  const nlen = R.inp[R.inPos + 2]! | (R.inp[R.inPos + 3]! << 8);
  if (len !== (~nlen & 0xffff)) throw new Bad('stored block length does not match its complement');
  R.inPos += 4;
  if (R.inPos + len > R.inp.length) throw new Truncated();
  if (outPos + len > out.length) throw new Overflow();
  out.set(R.inp.subarray(R.inPos, R.inPos + len), outPos);
  R.inPos += len;
  outPos += len;
}

function dynamic(): void {
  const nlen = bits(5) + 257;
  const ndist = bits(5) + 1;
  const ncode = bits(4) + 4;
  if (nlen > MAXLCODES || ndist > MAXDCODES) throw new Bad('too many length or distance codes');
  let i = 0;
  for (; i < ncode; i++) lengths[ORDER[i]!] = bits(3);
  for (; i < 19; i++) lengths[ORDER[i]!] = 0;
  // The code-length code must be complete (zlib and puff.c refuse an incomplete one).
  if (construct(lencode, lengths, 0, 19) !== 0) throw new Bad('incomplete or over-subscribed code-length code');
  let index = 0;
  while (index < nlen + ndist) {
    let sym = decodeSym(lencode, 'code-length');
    if (sym < 16) {
      lengths[index++] = sym;
      continue;
    }
    let len = 0;
    if (sym === 16) {
      if (index === 0) throw new Bad('repeat of a code length with none before it');
      len = lengths[index - 1]!;
      sym = 3 + bits(2);
    } else if (sym === 17) sym = 3 + bits(3);
    else sym = 11 + bits(7);
    if (index + sym > nlen + ndist) throw new Bad('code lengths run past the declared count');
    while (sym-- > 0) lengths[index++] = len;
  }
  if (lengths[256] === 0) throw new Bad('no end-of-block code');
  // Incomplete codes are allowed only when they hold a single code of length 1 (RFC 1951 §3.2.7
  // allows one distance code; zlib and puff.c allow the same for literal/length codes).
  let err = construct(lencode, lengths, 0, nlen);
  if (err < 0 || (err > 0 && nlen !== lencode.count[0]! + lencode.count[1]!)) {
    throw new Bad('incomplete or over-subscribed literal/length code');
  }
  err = construct(distcode, lengths, nlen, ndist);
  if (err < 0 || (err > 0 && ndist !== distcode.count[0]! + distcode.count[1]!)) {
    throw new Bad('incomplete or over-subscribed distance code');
  }
  codes(lencode, distcode);
}

{
  // Fixed Huffman codes (§3.2.6), built once.
  const l = new Uint8Array(FIXLCODES);
  l.fill(8, 0, 144);
  l.fill(9, 144, 256);
  l.fill(7, 256, 280);
  l.fill(8, 280, 288);
  construct(fixedLen, l, 0, FIXLCODES);
  construct(fixedDist, new Uint8Array(MAXDCODES).fill(5), 0, MAXDCODES);
}

/** Output bodies up to this size are inflated into one reused scratch buffer (decode is synchronous). */
const SCRATCH_MAX = 64 * 1024;
let scratch = new Uint8Array(4096);

/**
 * Inflates `z` (a raw deflate stream that takes the rest of the message) into exactly `len` bytes.
 * The result may be a view of a scratch buffer that the next call overwrites: read it before then.
 * Bytes after the stream's final block are not looked at (docs/codec.md §Envelope).
 * Throws CodecError EGW_CODEC_INFLATE, at offset `at` (where the stream starts), for an invalid or
 * truncated stream and for any inflated length other than `len`.
 */
export function inflateBody(z: Uint8Array, len: number, at: number): Uint8Array {
  if (z.length === 0) throw new CodecError('EGW_CODEC_INFLATE', 'no deflate stream after the inflated length', at);
  if (len <= SCRATCH_MAX) {
    if (scratch.length < len) scratch = new Uint8Array(Math.min(SCRATCH_MAX, Math.max(len, scratch.length * 2)));
    out = scratch.subarray(0, len);
  } else out = new Uint8Array(len);
  R.inp = z;
  R.inPos = 0;
  R.bitbuf = 0;
  R.bitcnt = 0;
  outPos = 0;
  try {
    let last = 0;
    do {
      last = bits(1);
      const type = bits(2);
      if (type === 0) stored();
      else if (type === 1) codes(fixedLen, fixedDist);
      else if (type === 2) dynamic();
      else throw new Bad('invalid block type 3');
    } while (last === 0);
  } catch (err) {
    if (err instanceof Overflow) {
      throw new CodecError('EGW_CODEC_INFLATE', `deflate stream inflates past its declared ${len} B`, at);
    }
    if (err instanceof Truncated) throw new CodecError('EGW_CODEC_INFLATE', 'deflate stream is truncated', at);
    if (err instanceof Bad) throw new CodecError('EGW_CODEC_INFLATE', `invalid deflate stream: ${err.message}`, at);
    throw err;
  } finally {
    R.inp = new Uint8Array(0); // do not keep the caller's message alive
  }
  if (outPos !== len) {
    throw new CodecError('EGW_CODEC_INFLATE', `deflate stream inflates to ${outPos} B, header declares ${len} B`, at);
  }
  return out;
}
