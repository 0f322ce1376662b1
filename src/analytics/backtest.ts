import { RuleEngine, type AlertEvent, type RuleInput } from './engine.js';
import type { AnalyticsConfig } from './config.js';

/** Live evaluation ticks the engine this often; the backtest ticks recorded time the same way. */
export const TICK_MS = 1000;

export interface BacktestResult {
  events: AlertEvent[];
  readings: number;
  /** First and last recorded timestamps (ms), null when there was no reading. */
  from: number | null;
  to: number | null;
  open: number;
}

/**
 * Runs the rules over recorded readings with their own timestamps as the clock: between two
 * readings the engine is ticked every TICK_MS of recorded time, as the live gateway ticks it every
 * TICK_MS of monotonic time, so durations, silence and no-data rules behave as they would have
 * live. Readings must be in time order; an older one is evaluated at the current time.
 */
export function backtest(config: AnalyticsConfig, readings: Iterable<RuleInput>, tailMs = 0): BacktestResult {
  const engine = new RuleEngine(config);
  const events: AlertEvent[] = [];
  let clock: number | null = null;
  let from: number | null = null;
  let count = 0;
  const tickUntil = (t: number) => {
    if (clock === null) return;
    // Ticks land on the same grid as live: every TICK_MS after the first reading.
    for (let next = clock + TICK_MS; next <= t; next += TICK_MS) {
      events.push(...engine.tick(next, next));
      clock = next;
    }
  };
  for (const r of readings) {
    const t: number = clock === null ? r.ts : Math.max(r.ts, clock);
    if (clock === null) {
      clock = t;
      from = r.ts;
      events.push(...engine.tick(t, t));
    }
    tickUntil(t);
    events.push(...engine.onReading(r, t));
    count++;
  }
  const last = clock;
  if (last !== null && tailMs > 0) tickUntil(last + tailMs);
  return { events, readings: count, from, to: last, open: engine.active().length };
}

/** One line per event, for a person tuning thresholds. */
export function formatEvent(e: AlertEvent): string {
  const a = e.alert;
  const when = e.kind === 'cleared' ? a.clearedTs : e.kind === 'acknowledged' ? a.acknowledgedTs : a.raisedTs;
  const value = e.kind === 'cleared' ? a.clearedValue : a.value;
  const iso = when !== null && Number.isFinite(when) ? new Date(when).toISOString() : String(when);
  const extra = e.kind === 'cleared' ? ` (${a.clearReason})` : a.score !== null ? ` z=${a.score.toFixed(2)}` : '';
  return `${iso}  ${e.kind.toUpperCase().padEnd(8)} ${a.id}  ${a.deviceId} ${a.name}=${JSON.stringify(value)}${extra}`;
}
