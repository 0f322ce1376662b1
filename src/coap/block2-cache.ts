import type { CoapReply, CoapRequest } from './router.js';

/** The library's largest Block2 size (2^(6+4)); larger bodies go block-wise (RFC 7959 §2.2). */
export const MAX_BLOCK = 1024;

/**
 * RFC 7959 §2.4: later blocks of a Block2 transfer come from the representation the first block
 * was cut from. Clients may use a new token per block, so the library's own cache (keyed by token)
 * misses; this one is keyed by peer, method, path and query. Bounded in age and count.
 */
export class Block2Cache {
  private readonly entries = new Map<string, { reply: CoapReply; at: number }>();

  constructor(
    private readonly ttlMs = 30_000,
    private readonly maxEntries = 256,
  ) {}

  static key(source: string, req: Pick<CoapRequest, 'method' | 'path' | 'query'>): string {
    return `${source}|${req.method}|${req.path.join('/')}|${JSON.stringify(req.query)}`;
  }

  get(key: string, nowMs: number): CoapReply | undefined {
    const e = this.entries.get(key);
    return e && nowMs - e.at < this.ttlMs ? e.reply : undefined;
  }

  put(key: string, reply: CoapReply, nowMs: number): void {
    this.entries.delete(key);
    this.entries.set(key, { reply, at: nowMs });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** NUM of a Block1/Block2 option (RFC 7959 §2.2), 0 when absent. */
export function blockNumber(options: readonly { name: unknown; value: unknown }[], name: string): number {
  const o = options.find((x) => x.name === name);
  const v = o && Buffer.isBuffer(o.value) ? o.value : undefined;
  if (!v || v.length === 0 || v.length > 3) return 0;
  return v.readUIntBE(0, v.length) >> 4;
}

export function toBuffer(p: Buffer | string | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0);
  return typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
}
