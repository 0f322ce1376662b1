import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { AnalyticsConfigSchema, type AnalyticsConfig } from '../../src/analytics/config.js';
import { RuleEngine } from '../../src/analytics/engine.js';
import { parseReadingLine } from '../../src/analytics/cli.js';

const MAIN = 'dist/src/main.js';
const T0 = 1_764_410_000_000;

function fixture(t: { after(fn: () => void): void }) {
  const d = mkdtempSync(join(tmpdir(), 'egw-rules-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  writeFileSync(
    join(d, 'g.yaml'),
    `version: 1
gateway: { data_dir: ${join(d, 'data')} }
analytics:
  rules:
    - { name: hot, value: temp, when: { above: 80 }, for_s: 20, clear: { below: 75 } }
    - { name: quiet, devices: boiler, value: temp, when: { no_data_s: 60 } }
`,
  );
  const lines: string[] = [];
  for (let i = 0; i < 100; i++)
    lines.push(
      JSON.stringify({ deviceId: 'boiler', ts: T0 + i * 5000, values: { temp: i >= 20 && i < 40 ? 85 : 70 } }),
    );
  lines.splice(50, 0, 'garbage', '{"deviceId":"x","values":{}}');
  writeFileSync(join(d, 'r.jsonl'), lines.join('\n') + '\n');
  return d;
}

test('rules test prints what the rules would have raised and cleared, skipping bad lines with their numbers', (t) => {
  const d = fixture(t);
  const res = spawnSync(
    process.execPath,
    [MAIN, 'rules', 'test', '--config', join(d, 'g.yaml'), '--input', join(d, 'r.jsonl'), '--tail-s', '120', '--json'],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(res.status, 0, res.stderr);
  const events = res.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; id: string; raisedTs: number; clearedTs: number | null });
  assert.deepEqual(
    events.map((e) => `${e.event} ${e.id}`),
    ['raised hot/boiler/1', 'cleared hot/boiler/1', 'raised quiet/boiler/2'],
  );
  assert.equal(events[0]!.raisedTs, T0 + 20 * 5000 + 20_000, 'raised 20 s after the first 85');
  assert.equal(events[1]!.clearedTs, T0 + 40 * 5000);
  assert.equal(events[2]!.raisedTs, T0 + 99 * 5000 + 60_000, '60 s after the last reading');
  assert.match(res.stderr, /r\.jsonl:51: not JSON/);
  assert.match(res.stderr, /r\.jsonl:52: ts missing/);
  assert.match(res.stderr, /100 readings .* 2 raised, 1 cleared, 1 open at the end/);
});

test('the backtest gives the events a live engine gives on the same sequence', (t) => {
  const d = fixture(t);
  const cfg = Value.Default(
    AnalyticsConfigSchema,
    structuredClone({
      rules: [
        { name: 'hot', value: 'temp', when: { above: 80 }, for_s: 20, clear: { below: 75 } },
        { name: 'quiet', devices: 'boiler', value: 'temp', when: { no_data_s: 60 } },
      ],
    }),
  ) as AnalyticsConfig;
  // Live: the gateway's clock ticks every second; readings arrive at their times.
  const live = new RuleEngine(cfg);
  const got: string[] = [];
  let next = 0;
  const readings = [];
  for (let i = 0; i < 100; i++)
    readings.push({ deviceId: 'boiler', ts: T0 + i * 5000, values: { temp: i >= 20 && i < 40 ? 85 : 70 } });
  for (let ms = 0; ms <= 99 * 5000 + 120_000; ms += 1000) {
    while (next < readings.length && readings[next]!.ts - T0 <= ms) {
      for (const e of live.onReading(readings[next]!, readings[next]!.ts - T0)) got.push(`${e.kind} ${e.alert.id}`);
      next++;
    }
    for (const e of live.tick(ms, T0 + ms)) got.push(`${e.kind} ${e.alert.id}`);
  }
  const res = spawnSync(
    process.execPath,
    [MAIN, 'rules', 'test', '--config', join(d, 'g.yaml'), '--input', join(d, 'r.jsonl'), '--tail-s', '120', '--json'],
    {
      encoding: 'utf8',
    },
  );
  const backtested = res.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; id: string })
    .map((e) => `${e.event} ${e.id}`);
  assert.deepEqual(backtested, got);
});

test('bad invocations say what is wrong: exit 2 for usage, exit 1 for an invalid rule config', (t) => {
  const d = fixture(t);
  assert.equal(spawnSync(process.execPath, [MAIN, 'rules', 'test', '--config', join(d, 'g.yaml')]).status, 2);
  assert.equal(spawnSync(process.execPath, [MAIN, 'rules', 'nope']).status, 2);
  writeFileSync(
    join(d, 'bad.yaml'),
    'version: 1\nanalytics:\n  rules:\n    - { name: a, value: t, when: { above: 1 } }\n    - { name: a, value: t, when: { above: 2 } }\n',
  );
  const res = spawnSync(
    process.execPath,
    [MAIN, 'rules', 'test', '--config', join(d, 'bad.yaml'), '--input', join(d, 'r.jsonl')],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(res.status, 1);
  assert.match(res.stderr, /analytics\.rules\[1\]: rule name "a" is used twice/);
});

test('reading lines: hostile and malformed input is refused with a reason, never thrown', () => {
  for (const [line, why] of [
    ['', 'not JSON'],
    ['[1,2]', 'not an object'],
    ['null', 'not an object'],
    ['{"deviceId":"","ts":1,"values":{}}', 'deviceId missing'],
    ['{"deviceId":"a","ts":"yesterday","values":{}}', 'ts missing or not epoch ms / ISO-8601'],
    ['{"deviceId":"a","ts":1,"values":[1]}', 'values missing'],
    ['{"deviceId":"a","ts":1e400,"values":{}}', 'ts missing or not epoch ms / ISO-8601'],
  ] as const)
    assert.equal(parseReadingLine(line), why, line);
  const r = parseReadingLine(
    '{"deviceId":"a","ts":"2025-11-29T10:00:00Z","values":{"x":1,"s":"ok","o":{"n":1},"__proto__":{"p":1}}}',
  );
  assert.deepEqual(r, { deviceId: 'a', ts: Date.parse('2025-11-29T10:00:00Z'), values: { x: 1, s: 'ok' } });
});
