/**
 * The rule engine alone on the end-to-end benchmark's workload: ANALYTICS_RULES (ten rules on
 * `seq`) over 8 devices, the readings of `bench-uplink.js analytics` at 8,000 readings/s of engine
 * time. With `--ref DIR` the engine of DIR's build runs the same readings in the same process,
 * alternated round by round, and both are printed (µs of CPU per reading).
 * Run: npm run build && node dist/scripts/bench-analytics-rules.js [readings=200000] [rounds=10] [--ref DIR]
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import type { RuleInput } from '../src/analytics/engine.js';
import { ANALYTICS_RULES } from './analytics-rules.js';

const argv = process.argv.slice(2);
const refAt = argv.indexOf('--ref');
const REF = refAt >= 0 ? resolve(argv.splice(refAt, 2)[1]!) : undefined;
const total = Number(argv[0] ?? 200_000);
const rounds = Number(argv[1] ?? 10);

const config = parseConfig(
  `version: 1\nanalytics:\n  rules:\n${ANALYTICS_RULES.map((r) => `    - ${r}\n`).join('')}`,
).analytics;
interface Engine {
  onReading(r: RuleInput, now: number): unknown;
}
type EngineModule = { RuleEngine: new (c: typeof config) => Engine };

const here = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const builds = [{ name: 'this', root: here }, ...(REF ? [{ name: 'reference', root: REF }] : [])];
const engines = await Promise.all(
  builds.map(async (b) => ({
    name: b.name,
    engine: new ((await import(join(b.root, 'dist/src/analytics/engine.js'))) as EngineModule).RuleEngine(config),
    cpuUs: 0,
  })),
);
const readings: RuleInput[] = Array.from({ length: total }, (_, i) => ({
  deviceId: `bench-${i % 8}`,
  ts: 1_700_000_000_000 + i / 8,
  values: { seq: i >> 3 },
}));
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? engines : [...engines].reverse();
  for (const e of order) {
    const c0 = process.cpuUsage();
    // 8,000 readings per second of engine time (1,000 per device), time running on across rounds.
    for (let i = 0; i < total; i++) e.engine.onReading(readings[i]!, (round * total + i) / 8);
    const c = process.cpuUsage(c0);
    e.cpuUs += c.user + c.system;
  }
}
console.log(
  JSON.stringify({
    bench: 'analytics-rules',
    rules: ANALYTICS_RULES.length,
    devices: 8,
    readings: total * rounds,
    usPerReading: Object.fromEntries(engines.map((e) => [e.name, +(e.cpuUs / (total * rounds)).toFixed(3)])),
  }),
);
