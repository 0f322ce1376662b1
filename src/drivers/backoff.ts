/**
 * Capped exponential backoff: initial, 2·initial, 4·initial ... up to max, with ±20 % jitter so
 * several drivers that lost their ports together (a USB hub reset) do not retry in lockstep.
 * Pure: `rand` is injected.
 */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  rand: () => number = Math.random,
): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  const jitter = 1 + (rand() * 0.4 - 0.2);
  return Math.max(1, Math.round(Math.min(maxMs, base * jitter)));
}
