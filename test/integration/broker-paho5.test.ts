import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { GatewayProcess, tempDir } from '../helpers/gateway-process.js';

/**
 * The Eclipse Paho MQTT 5 interoperability suite (eclipse/paho.mqtt.testing
 * interoperability/client_test5.py, vendored unchanged in test/fixtures/paho) against the built
 * gateway on the embedded default config (config/gateway.yaml, ports made ephemeral, temp data_dir).
 * run_client_test5.py runs each test in its own process (30 s bound here); the 27 tests are spread
 * over two gateways on the same config to fit the test-file time budget (tests share client ids,
 * so one broker runs them one after the other).
 *
 * Target: at least Mosquitto 2.0.11's 21/27 (docs/broker.md, "MQTT 5"), and no failure but the
 * explained ones: aedes 2.0.0-beta.1 does not limit what it sends to a client's Receive Maximum
 * (test_flow_control1), has no broker-assigned topic aliases (test_server_topic_alias, optional),
 * echoes one Subscription Identifier for overlapping subscriptions (test_subscribe_identifiers),
 * has no shared subscriptions (test_shared_subscriptions); Paho's codec refuses SUBACK 0x87, and the
 * default config refuses no filter to trusted loopback clients anyway (test_subscribe_failure); the
 * default keepalive_max_s (600) is above the 120 s the suite asks for (test_server_keep_alive).
 */
const ROOT = new URL('../../../', import.meta.url).pathname;
const RUNNER5 = join(ROOT, 'test/fixtures/paho/run_client_test5.py');
const python = spawnSync('python3', ['--version']);
const noPython = python.error !== undefined ? 'python3 is not installed' : false;

const EXPLAINED = new Set([
  'test_flow_control1',
  'test_server_topic_alias',
  'test_subscribe_identifiers',
  'test_shared_subscriptions',
  'test_subscribe_failure',
  'test_server_keep_alive',
]);

const tmp = tempDir('egw-paho5-');
const procs: GatewayProcess[] = [];
after(async () => {
  for (const p of procs) await p.stop('SIGKILL');
  tmp.cleanup();
});

function defaultConfig(name: string): string {
  const doc = parseDocument(readFileSync(join(ROOT, 'config/gateway.yaml'), 'utf8'));
  doc.setIn(['gateway', 'data_dir'], join(tmp.dir, name));
  doc.setIn(['metrics', 'port'], 0);
  doc.setIn(['coap', 'port'], 0);
  doc.setIn(['broker', 'port'], 0);
  return tmp.file(`${name}.yaml`, doc.toString());
}

interface Part {
  results: Map<string, string>;
  output: string;
}

async function runPart(name: string, tests: string[]): Promise<Part> {
  const gw = GatewayProcess.start(defaultConfig(name));
  procs.push(gw);
  const listening = await gw.waitForLog((l) => l.msg === 'MQTT broker listening', 20000);
  await gw.ready(20000);
  const port = listening['port'] as number;
  const child = spawn('python3', ['-B', RUNNER5, '127.0.0.1', String(port), '30', tests.join(',')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 270000);
  await new Promise((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  assert.equal(await gw.stop('SIGTERM'), 0);
  const results = new Map<string, string>();
  for (const m of output.matchAll(/^PAHO5 TEST (\S+) (\S+)/gm)) results.set(m[1]!, m[2]!);
  return { results, output };
}

test(
  "Eclipse Paho MQTT 5 interoperability suite on the default config: at least Mosquitto 2.0.11's 21/27, every failure an explained one",
  { skip: noPython, timeout: 400000 },
  async () => {
    const names = spawnSync('python3', [
      '-B',
      '-c',
      'import sys, unittest; sys.path.insert(0, sys.argv[1]); import client_test5; ' +
        'print(",".join(sorted(unittest.TestLoader().getTestCaseNames(client_test5.Test))))',
      join(ROOT, 'test/fixtures/paho/interoperability'),
    ])
      .stdout.toString()
      .trim()
      .split(',');
    assert.equal(names.length, 27);
    const parts = await Promise.all([
      runPart(
        'a',
        names.filter((_, i) => i % 2 === 0),
      ),
      runPart(
        'b',
        names.filter((_, i) => i % 2 === 1),
      ),
    ]);
    const results = new Map([...parts[0].results, ...parts[1].results]);
    let output = parts.map((p) => p.output).join('\n');
    // The suite's own waits are fixed at 2–3 s; on a starved machine (a shared CI host) one can
    // expire. An unexplained failure is run once more, alone: only one that fails again counts.
    const suspects = [...results].filter(([n, st]) => st !== 'pass' && !EXPLAINED.has(n)).map(([n]) => n);
    if (suspects.length > 0) {
      const again = await runPart('retry', suspects);
      console.log(`paho v5 re-run alone: ${[...again.results].map(([n, st]) => `${n} ${st}`).join(', ')}`);
      for (const [n, st] of again.results) results.set(n, st);
      output += `\n(re-run alone)\n${again.output}`;
    }
    assert.equal(results.size, 27, output);
    const failed = [...results].filter(([, s]) => s !== 'pass').map(([n, s]) => `${n} (${s})`);
    const passed = 27 - failed.length;
    console.log(`paho v5 default config: ${passed}/27 failed: ${failed.join(' ') || '-'}`);
    assert.ok(passed >= 21, output);
    assert.deepEqual(
      failed.filter((f) => !EXPLAINED.has(f.split(' ')[0]!)),
      [],
      output,
    );
  },
);
