/**
 * Source allow-lists: CIDR blocks (RFC 4632 for IPv4, RFC 4291 §2.3 for IPv6) parsed strictly, so a
 * typo is a config error with its line instead of a list that silently admits the wrong hosts.
 * Pure: strings in, a parsed block or a reason out; addresses in, true/false out.
 */

export interface Cidr {
  family: 4 | 6;
  /** Network address as a 32-bit (IPv4) or 128-bit (IPv6) integer. */
  bits: bigint;
  prefix: number;
}

export type CidrResult = { ok: true; cidr: Cidr } | { ok: false; reason: string };

/** Longest text form accepted (an IPv6 address with an embedded IPv4 tail and /128 is 49). */
export const CIDR_MAX_LENGTH = 64;

// Dotted quad without leading zeros: "010.0.0.1" is octal to some tools and decimal to others.
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
const HEXTET = /^[0-9A-Fa-f]{1,4}$/;
const PREFIX = /^(?:0|[1-9][0-9]{0,2})$/;

export function parseIPv4(s: string): bigint | undefined {
  if (!IPV4.test(s)) return undefined;
  return s.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

/** RFC 4291 §2.2 text forms: full, `::`-compressed, and with an IPv4 tail; no zone index (`%eth0`). */
export function parseIPv6(s: string): bigint | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const words = (part: string, allowV4Tail: boolean): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const groups = part.split(':');
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (HEXTET.test(g)) out.push(parseInt(g, 16));
      else return undefined;
    }
    return out;
  };
  const head = words(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? words(halves[1]!, true) : [];
  if (!head || !tail) return undefined;
  const n = head.length + tail.length;
  if (halves.length === 1 ? n !== 8 : n > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - n).fill(0), ...tail];
  return all.reduce((acc, w) => (acc << 16n) | BigInt(w), 0n);
}

/** `10.0.0.0/8`, `fd00::/8`, or a single address (`/32`, `/128` implied). */
export function parseCidr(text: unknown): CidrResult {
  if (typeof text !== 'string') return { ok: false, reason: 'must be a CIDR string like 10.0.0.0/8' };
  if (text.length === 0 || text.length > CIDR_MAX_LENGTH)
    return { ok: false, reason: `must be a CIDR block of 1-${CIDR_MAX_LENGTH} characters` };
  // Quoted with escapes: a newline or terminal escape in the value must not reshape the error output.
  const shown = JSON.stringify(text);
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const pfx = slash < 0 ? undefined : text.slice(slash + 1);
  let family: 4 | 6;
  let bits = parseIPv4(addr);
  if (bits !== undefined) family = 4;
  else {
    if (addr.includes('%')) return { ok: false, reason: `${shown}: zone indexes (%) are not allowed` };
    bits = parseIPv6(addr);
    if (bits === undefined)
      return { ok: false, reason: `${shown}: not an IPv4 or IPv6 address (dotted quad without leading zeros)` };
    family = 6;
    // Sources arrive as plain IPv4 (IPv4-mapped peers are normalised), so a mapped block never matches.
    if (bits >> 32n === 0xffffn) return { ok: false, reason: `${shown}: write IPv4-mapped addresses as IPv4` };
  }
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (pfx !== undefined) {
    if (!PREFIX.test(pfx) || Number(pfx) > max)
      return { ok: false, reason: `${shown}: prefix length must be 0-${max} for IPv${family}` };
    prefix = Number(pfx);
  }
  const host = (1n << BigInt(max - prefix)) - 1n;
  if ((bits & host) !== 0n) {
    const net = format(family, bits & ~host);
    return { ok: false, reason: `${shown}: host bits are set (did you mean ${net}/${prefix}?)` };
  }
  return { ok: true, cidr: { family, bits, prefix } };
}

function format(family: 4 | 6, bits: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((bits >> s) & 0xffn)).join('.');
  const words: string[] = [];
  for (let i = 7; i >= 0; i--) words.push(((bits >> BigInt(i * 16)) & 0xffffn).toString(16));
  return words.join(':');
}

/**
 * The sources a listener admits. Addresses come from the socket (`::ffff:a.b.c.d` for IPv4 peers on a
 * dual-stack socket is read as IPv4). Verdicts are cached per address (bounded), so the per-datagram
 * cost is one Map lookup.
 */
export class AllowList {
  private readonly blocks: Cidr[];
  private readonly cache = new Map<string, boolean>();

  constructor(
    readonly sources: readonly string[],
    private readonly maxCached = 4096,
  ) {
    this.blocks = sources.map((s) => {
      const r = parseCidr(s);
      if (!r.ok) throw new Error(r.reason);
      return r.cidr;
    });
  }

  allows(address: string): boolean {
    const hit = this.cache.get(address);
    if (hit !== undefined) return hit;
    const ok = this.match(address);
    if (this.cache.size >= this.maxCached) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(address, ok);
    return ok;
  }

  private match(address: string): boolean {
    const a = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
    let family: 4 | 6 = 4;
    let bits = parseIPv4(a);
    if (bits === undefined) {
      family = 6;
      // A link-local peer arrives as fe80::1%eth0; the zone does not take part in the match.
      const pct = a.indexOf('%');
      bits = parseIPv6(pct < 0 ? a : a.slice(0, pct));
    }
    if (bits === undefined) return false;
    const max = family === 4 ? 32 : 128;
    for (const b of this.blocks) {
      if (b.family !== family) continue;
      const shift = BigInt(max - b.prefix);
      if (bits >> shift === b.bits >> shift) return true;
    }
    return false;
  }
}
