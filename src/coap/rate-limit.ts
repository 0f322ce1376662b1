/**
 * Token buckets per key (source address), bounded: beyond `maxKeys` the least recently used key
 * is forgotten, so a spoofed-address flood cannot grow memory. Pure: time is passed in.
 */
export interface RateLimitOptions {
  /** Sustained rate per key. */
  perSecond: number;
  /** Bucket size: how many may arrive at once after a quiet period. */
  burst: number;
  maxKeys: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly opts: RateLimitOptions) {}

  /** Takes one token for `key` at monotonic time `nowMs`; false means over the limit. */
  take(key: string, nowMs: number): boolean {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-insert: Map order is the LRU order
      b.tokens = Math.min(this.opts.burst, b.tokens + ((nowMs - b.at) / 1000) * this.opts.perSecond);
      b.at = nowMs;
    } else {
      b = { tokens: this.opts.burst, at: nowMs };
      if (this.buckets.size >= this.opts.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Tokens left for `key` without taking one (for tests and /mgmt). */
  peek(key: string): number | undefined {
    return this.buckets.get(key)?.tokens;
  }

  get size(): number {
    return this.buckets.size;
  }
}
