/**
 * Pure bandwidth pieces: the token bucket that caps uplink bytes/s, the AIMD rate adaptation and
 * the per-message cost estimate (what a message really costs the link, not just its payload).
 * Time is passed in (monotonic ms), never read here.
 */

/** Bytes a remaining-length varint takes (MQTT 5 §1.5.5). */
function varintBytes(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

/**
 * Bytes on the wire for a QoS 1 PUBLISH and its PUBACK (MQTT 5 §3.3, §3.4): fixed header,
 * topic, packet id, properties (user property `msg-id`, content type), payload, plus `linkOverhead`
 * for what lies below MQTT (TCP/IP headers of both segments, a TLS record).
 */
export function messageCost(
  topicBytes: number,
  idBytes: number,
  contentTypeBytes: number,
  payloadBytes: number,
  linkOverhead: number,
): number {
  const props = 1 + 2 + 6 + 2 + idBytes + (contentTypeBytes > 0 ? 1 + 2 + contentTypeBytes : 0); // 'msg-id' = 6
  const variable = 2 + topicBytes + 2 + varintBytes(props) + props;
  const remaining = variable + payloadBytes;
  const publish = 1 + varintBytes(remaining) + remaining;
  const puback = 4;
  return publish + puback + linkOverhead;
}

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private rateBps: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  get rate(): number {
    return this.rateBps;
  }

  setRate(rateBps: number, now: number): void {
    this.refill(now);
    this.rateBps = rateBps;
  }

  /**
   * Takes `cost` bytes if the bucket allows and returns 0; otherwise returns the ms to wait.
   * A message larger than the bucket is allowed once the bucket is full and leaves it in debt,
   * so no message size can stall the queue forever.
   */
  take(cost: number, now: number): number {
    this.refill(now);
    const need = Math.min(cost, this.burst);
    if (this.tokens >= need) {
      this.tokens -= cost;
      return 0;
    }
    return Math.max(1, Math.ceil(((need - this.tokens) / this.rateBps) * 1000));
  }

  /** Takes `bytes` now whatever the bucket holds (debt repaid by waiting): a cost learned after the send. */
  charge(bytes: number, now: number): void {
    this.refill(now);
    this.tokens -= bytes;
  }

  private refill(now: number): void {
    const dt = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + dt * this.rateBps);
  }
}

export interface AdaptiveOptions {
  maxBps: number;
  minBps: number;
  /** Smoothed ack latency above which the link counts as congested. */
  targetLatencyMs: number;
  /** Decisions are taken at most this often. */
  intervalMs?: number;
}

/**
 * AIMD (as TCP congestion avoidance, RFC 5681 §3.1): when the smoothed acknowledgement latency
 * exceeds the target, multiply the rate by 0.7; otherwise add 5 % of the maximum per interval,
 * up to the configured cap. Ack latency rises as a cellular/satellite link's buffers fill.
 */
export class AdaptiveRate {
  private srtt: number | undefined;
  private rateBps: number;
  private lastDecision: number;
  private readonly intervalMs: number;

  constructor(
    private readonly opts: AdaptiveOptions,
    now: number,
  ) {
    this.rateBps = opts.maxBps;
    this.lastDecision = now;
    this.intervalMs = opts.intervalMs ?? 1000;
  }

  get rate(): number {
    return this.rateBps;
  }

  get smoothedLatencyMs(): number | undefined {
    return this.srtt;
  }

  /** Feeds one acknowledgement latency; returns true when the rate changed. */
  onAck(latencyMs: number, now: number): boolean {
    this.srtt = this.srtt === undefined ? latencyMs : this.srtt * 0.875 + latencyMs * 0.125;
    return this.decide(now, this.srtt > this.opts.targetLatencyMs);
  }

  /** An acknowledgement timed out: congestion (or a dead link), decrease at once. */
  onTimeout(now: number): boolean {
    this.lastDecision = -Infinity;
    return this.decide(now, true);
  }

  private decide(now: number, congested: boolean): boolean {
    if (now - this.lastDecision < this.intervalMs) return false;
    this.lastDecision = now;
    const before = this.rateBps;
    this.rateBps = congested
      ? Math.max(this.opts.minBps, this.rateBps * 0.7)
      : Math.min(this.opts.maxBps, this.rateBps + this.opts.maxBps * 0.05);
    return this.rateBps !== before;
  }
}
