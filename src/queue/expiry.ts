/**
 * Expiry and quota as pure functions: values in, a decision out (no clock, no database), so the
 * rules are tested with numbers alone (test/unit/queue/expiry.test.ts).
 */
import type { DropReason } from './types.js';

/**
 * Why something stored at gateway-clock time `t` with its own TTL `ttlMs` (0 = never expires)
 * has expired at `clock`, or undefined while it is still alive. The TTL is always the message's
 * own (from the producer, the matching rule or the class, decided once at enqueue): a message
 * enqueued with `ttlS: 0` never expires by TTL, wherever it waits. `maxAgeMs` (outbox.max_age_s)
 * bounds everything.
 */
export function expiryReason(t: number, ttlMs: number, maxAgeMs: number, clock: number): DropReason | undefined {
  const age = clock - t;
  if (ttlMs > 0 && age > ttlMs) return 'ttl';
  if (age > maxAgeMs) return 'age';
  return undefined;
}

/**
 * The class to evict from next, or undefined when `bytesByClass` fits in `maxBytes` (or nothing
 * evictable is left). Lowest priority first (LOW, MEDIUM, HIGH), CRITICAL only when nothing else
 * is left; `exhausted[c]` marks a class with nothing evictable (only in-flight messages).
 */
export function nextEviction(
  bytesByClass: readonly number[],
  maxBytes: number,
  exhausted: readonly boolean[],
): number | undefined {
  let used = 0;
  for (const b of bytesByClass) used += b;
  if (used <= maxBytes) return undefined;
  for (let c = bytesByClass.length - 1; c >= 0; c--) {
    if (!exhausted[c] && bytesByClass[c]! > 0) return c;
  }
  return undefined;
}
