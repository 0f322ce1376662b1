/**
 * Analytics stage cost: 1,000 devices × 5 metrics × 10 rules (a threshold with duration and
 * hysteresis, and a z-score over a 100-sample window, per metric), readings paced at a target
 * rate in recorded time. Reports µs of CPU per reading for the engine, the engine's share of a
 * 1 s budget at the target rate, and the bytes the rule state and the history write per reading
 * (row bytes handed to SQLite, and the process's write_bytes from /proc/self/io, WAL and
 * checkpoints included). Reference in the same run: the same readings through a loop that only
 * walks their values (what any stage costs before it evaluates anything).
 * Run: npm run build && node dist/scripts/bench-analytics.js [readings=200000] [rate=10000]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { AnalyticsConfigSchema, type AnalyticsConfig } from '../src/analytics/config.js';
import { RuleEngine } from '../src/analytics/engine.js';
import { AnalyticsStore } from '../src/analytics/store.js';
import { HistoryConfigSchema, type HistoryConfig } from '../src/history/config.js';
import { HistoryStore } from '../src/history/store.js';
import type { Reading } from '../src/pipeline/reading.js';
import { openDatabase } from '../src/store/db.js';

const total = Number(process.argv[2] ?? 200_000);
const rate = Number(process.argv[3] ?? 10_000);
const DEVICES = 1000;
const METRICS = ['temp', 'pressure', 'flow', 'vibration', 'current'];

const rules = METRICS.flatMap((m) => [
  { name: `${m}-high`, devices: 'dev-*', value: m, when: { above: 90 }, clear: { below: 85 }, for_s: 30 },
  { name: `${m}-spike`, devices: 'dev-*', value: m, when: { zscore_above: 4 }, warmup: 30 },
]);
const cfg = Value.Default(AnalyticsConfigSchema, structuredClone({ rules, max_tracks: 100_000 })) as AnalyticsConfig;

function writeBytes(): number {
  const m = /write_bytes:\s*(\d+)/.exec(readFileSync('/proc/self/io', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function* readings(): Generator<Reading> {
  let seed = 12345;
  const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < total; i++) {
    const values: Record<string, number> = {};
    for (const m of METRICS) values[m] = 50 + rnd() * 20 + (rnd() < 0.001 ? 40 : 0);
    yield {
      deviceId: `dev-${i % DEVICES}`,
      ts: 1_700_000_000_000 + (i * 1000) / rate,
      values,
      quality: 'good',
      source: 'mqtt',
    };
  }
}

const all = [...readings()];

// Reference: walk the values only.
let sink = 0;
const r0 = process.cpuUsage();
for (const r of all) for (const k in r.values) sink += r.values[k] as number;
const refUs = (process.cpuUsage(r0).user + process.cpuUsage(r0).system) / total;

const dir = mkdtempSync(join(tmpdir(), 'egw-bench-an-'));
const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
const engine = new RuleEngine(cfg);
const store = new AnalyticsStore(db);
const history = new HistoryStore(db, Value.Default(HistoryConfigSchema, {}) as HistoryConfig);
let events = 0;
const w0 = writeBytes();
let engineCpu = 0;
let storeCpu = 0;
let lastPersist = 0;
let lastFlush = 0;
const CHUNK = 1000; // CPU is read per chunk: process.cpuUsage per reading would cost more than a rule
for (let c = 0; c < all.length; c += CHUNK) {
  const end = Math.min(all.length, c + CHUNK);
  const c0 = process.cpuUsage();
  for (let i = c; i < end; i++) {
    const now = (i * 1000) / rate;
    events += engine.onReading(all[i]!, now).length;
    // Live ticks every TICK_MS (1 s) of monotonic time: every `rate` readings here.
    if (i % rate === 0) events += engine.tick(now, all[i]!.ts).length;
  }
  const c1 = process.cpuUsage(c0);
  engineCpu += c1.user + c1.system;
  const s0 = process.cpuUsage();
  for (let i = c; i < end; i++) history.offer([all[i]!], (i * 1000) / rate);
  const now = (end * 1000) / rate;
  if (now - lastFlush >= 5000) {
    history.flush();
    lastFlush = now;
  }
  if (now - lastPersist >= cfg.persist_interval_s * 1000) {
    store.save(engine, now);
    lastPersist = now;
  }
  const s1 = process.cpuUsage(s0);
  storeCpu += s1.user + s1.system;
}
history.flush();
store.save(engine, (all.length * 1000) / rate);
db.pragma('wal_checkpoint(TRUNCATE)');
const written = writeBytes() - w0;
db.close();
rmSync(dir, { recursive: true, force: true });

const us = engineCpu / total;
const seconds = total / rate;
console.log(
  `analytics: ${total} readings, ${DEVICES} devices × ${METRICS.length} metrics × ${rules.length} rules, ${seconds} s of recorded time at ${rate}/s`,
);
console.log(
  `engine: ${us.toFixed(2)} µs CPU per reading (reference value walk ${refUs.toFixed(3)} µs); ${((us * rate) / 1e4).toFixed(1)} % of one core at ${rate}/s; ${events} alert events; ${engine.trackCount} tracks`,
);
console.log(`state + history writes: ${(storeCpu / total).toFixed(2)} µs CPU per reading`);
console.log(
  `bytes per reading: rule state ${(store.bytesWritten / total).toFixed(1)} B + history ${(history.stats.bytesWritten / total).toFixed(2)} B of rows; ` +
    `process write_bytes ${(written / total).toFixed(1)} B (WAL + checkpoint)`,
);
if (sink === 42) console.log('');
