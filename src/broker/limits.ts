import type { Duplex } from 'node:stream';

/**
 * Connect rate per address: a token bucket per remote address (capacity = rate, refilled at rate
 * per second, monotonic clock). The map is bounded: past `maxAddresses` the oldest entries go,
 * which at worst lets a forgotten address connect a burst again.
 */
export class ConnectRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
    private readonly maxAddresses = 10000,
  ) {}

  /** true when a new connection from `address` may proceed. */
  allow(address: string): boolean {
    if (this.perSecond <= 0) return true;
    const t = this.now();
    let b = this.buckets.get(address);
    if (b) {
      b.tokens = Math.min(this.perSecond, b.tokens + ((t - b.at) / 1000) * this.perSecond);
      b.at = t;
      this.buckets.delete(address); // re-insert: Map order is least recently used first
    } else {
      b = { tokens: this.perSecond, at: t };
    }
    this.buckets.set(address, b);
    if (this.buckets.size > this.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/**
 * Tracks MQTT packet boundaries in a byte stream without buffering it: fixed header byte, then
 * the Remaining Length (MQTT 3.1.1 §2.2.3: 1-4 bytes, 7 bits each), then skips the body.
 * `feed` returns the announced size of the first packet larger than `max`, or -1. The check runs
 * on the header, before the body arrives: a client announcing 256 MB is dropped after 5 bytes,
 * not after aedes' parser has buffered it.
 */
export class PacketSizeScanner {
  private skip = 0; // body bytes of the current packet still to pass
  private lenBytes = -1; // -1: expecting a fixed header byte; >= 0: reading the length
  private len = 0;
  private mul = 1;

  constructor(private readonly max: number) {}

  feed(buf: Uint8Array): number {
    let i = 0;
    while (i < buf.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      if (this.lenBytes < 0) {
        this.lenBytes = 0;
        this.len = 0;
        this.mul = 1;
        i++;
        continue;
      }
      const b = buf[i++]!;
      this.len += (b & 0x7f) * this.mul;
      this.mul *= 128;
      this.lenBytes++;
      if (b & 0x80) {
        // A fifth length byte is malformed (§2.2.3); aedes' parser reports it, we just stop here.
        if (this.lenBytes >= 4) return this.len > this.max ? this.len : -1;
        continue;
      }
      const total = 1 + this.lenBytes + this.len;
      if (total > this.max) return total;
      this.skip = this.len;
      this.lenBytes = -1;
    }
    return -1;
  }
}

/**
 * Installs the packet-size limit on a socket handed to aedes. aedes pulls data with
 * `conn.read(null)` on 'readable' (lib/client.js nextBatch), so the bytes are observed in that
 * call — no extra stream, no copy. An oversized packet destroys the socket and read returns null.
 */
export function limitPacketSize(conn: Duplex, max: number, onTooLarge: (size: number) => void): void {
  const scanner = new PacketSizeScanner(max);
  const read = conn.read.bind(conn);
  conn.read = (size?: number) => {
    const chunk: unknown = read(size);
    if (chunk instanceof Uint8Array && !conn.destroyed) {
      const tooLarge = scanner.feed(chunk);
      if (tooLarge >= 0) {
        onTooLarge(tooLarge);
        conn.destroy();
        return null;
      }
    }
    return chunk;
  };
}

/** Loopback addresses, including the IPv4-mapped form a dual-stack socket reports. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
