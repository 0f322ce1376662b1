import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { loadConfigFile } from '../config/load.js';
import { backtest, formatEvent } from './backtest.js';
import type { Value } from './conditions.js';
import { compileRules, type RuleInput } from './engine.js';

const USAGE = `Usage:
  edge-gateway rules test --config FILE --input READINGS.jsonl [--tail-s N] [--json]
  edge-gateway rules test --config FILE --history [--tail-s N] [--json]

Runs the config's analytics rules over recorded readings, with their own timestamps as the clock,
and prints the alerts they would have raised, acknowledged and cleared.
  --input    one reading per line: {"deviceId":"boiler-1","ts":1764410000000,"values":{"temp":81.5}}
             (ts in epoch ms or ISO-8601); a line that is not such a reading is reported and skipped
  --history  the local history in {gateway.data_dir}/gateway.db (read-only; the gateway may run)
  --tail-s   keep the clock running N seconds after the last reading (silence, durations)
  --json     one JSON event per line instead of text
`;

const MAX_LINE_ERRORS = 20;

/** Narrows one JSONL line to a reading, or says why not. */
export function parseReadingLine(line: string): RuleInput | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not an object';
  const o = v as Record<string, unknown>;
  if (typeof o['deviceId'] !== 'string' || o['deviceId'] === '') return 'deviceId missing';
  const ts = typeof o['ts'] === 'number' ? o['ts'] : typeof o['ts'] === 'string' ? Date.parse(o['ts']) : Number.NaN;
  if (!Number.isFinite(ts)) return 'ts missing or not epoch ms / ISO-8601';
  const values = o['values'];
  if (typeof values !== 'object' || values === null || Array.isArray(values)) return 'values missing';
  const out: Record<string, Value> = {};
  for (const [k, x] of Object.entries(values as Record<string, unknown>)) {
    if (x === null || typeof x === 'number' || typeof x === 'boolean' || typeof x === 'string') out[k] = x;
  }
  return { deviceId: o['deviceId'], ts, values: out };
}

async function* fromFile(path: string, errors: string[]): AsyncGenerator<RuleInput> {
  const rl = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) {
    n++;
    if (line.trim() === '') continue;
    const r = parseReadingLine(line);
    if (typeof r === 'string') {
      if (errors.length < MAX_LINE_ERRORS) errors.push(`${path}:${n}: ${r}`);
      else errors.push('');
      continue;
    }
    yield r;
  }
}

function* fromHistory(dbPath: string): Generator<RuleInput> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT device, ts, reading FROM history ORDER BY ts, id').iterate() as Iterable<{
      device: string;
      ts: number;
      reading: string;
    }>;
    for (const row of rows) {
      const parsed = JSON.parse(row.reading) as { values: Record<string, Value> };
      yield { deviceId: row.device, ts: row.ts, values: parsed.values };
    }
  } finally {
    db.close();
  }
}

/** `edge-gateway rules test ...` */
export async function rulesCommand(args: string[]): Promise<number> {
  if (args[0] !== 'test' || args.includes('--help')) {
    process.stderr.write(USAGE);
    return args.includes('--help') ? 0 : 2;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: args.slice(1),
      options: {
        config: { type: 'string', short: 'c', default: 'config/gateway.yaml' },
        input: { type: 'string', short: 'i' },
        history: { type: 'boolean', default: false },
        'tail-s': { type: 'string', default: '0' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!values.input === !values.history) {
    process.stderr.write(`give exactly one of --input FILE or --history\n${USAGE}`);
    return 2;
  }
  const tailS = Number(values['tail-s']);
  if (!Number.isFinite(tailS) || tailS < 0) {
    process.stderr.write('--tail-s takes a number of seconds ≥ 0\n');
    return 2;
  }
  let config;
  try {
    config = loadConfigFile(values.config);
    compileRules(config.analytics);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  const errors: string[] = [];
  const readings: RuleInput[] = [];
  try {
    if (values.input) for await (const r of fromFile(values.input, errors)) readings.push(r);
    else for (const r of fromHistory(join(config.gateway.data_dir, 'gateway.db'))) readings.push(r);
  } catch (err) {
    process.stderr.write(`cannot read the readings: ${(err as Error).message}\n`);
    return 1;
  }
  readings.sort((a, b) => a.ts - b.ts);
  const result = backtest(config.analytics, readings, tailS * 1000);
  for (const e of result.events)
    process.stdout.write(values.json ? `${JSON.stringify({ event: e.kind, ...e.alert })}\n` : `${formatEvent(e)}\n`);
  const shown = errors.filter((e) => e !== '');
  for (const e of shown) process.stderr.write(`skipped ${e}\n`);
  if (errors.length > shown.length)
    process.stderr.write(`... and ${errors.length - shown.length} more lines skipped\n`);
  const count = (k: string) => result.events.filter((e) => e.kind === k).length;
  const span =
    result.from === null
      ? 'no readings'
      : `${new Date(result.from).toISOString()} → ${new Date(result.to!).toISOString()}`;
  process.stderr.write(
    `${result.readings} readings (${span}), ${config.analytics.rules.length} rules: ${count('raised')} raised, ${count('cleared')} cleared, ${result.open} open at the end\n`,
  );
  return 0;
}
