import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { GatewayProcess, tempDir } from '../helpers/gateway-process.js';

/**
 * The Eclipse Paho MQTT 3.1.1 interoperability suite (eclipse/paho.mqtt.testing
 * interoperability/client_test.py, vendored unchanged in test/fixtures/paho) against the built
 * gateway on the embedded default config (config/gateway.yaml, ports made ephemeral, temp data_dir),
 * and on the same config plus the documented ACL (docs/broker.md, "Conformance").
 * Targets: 10/10 with the ACL; ≥ 9/10 on the default config, where trusted loopback clients may
 * subscribe to anything, so test_subscribe_failure (which needs a refused filter) cannot pass.
 */
const ROOT = new URL('../../../', import.meta.url).pathname;
const RUNNER = join(ROOT, 'test/fixtures/paho/run_client_test.py');
const RUNNER5 = join(ROOT, 'test/fixtures/paho/run_client_test5.py');
const python = spawnSync('python3', ['--version']);
const noPython = python.error !== undefined ? 'python3 is not installed' : false;

/** The documented ACL (docs/broker.md, "Conformance"): the suite's test/nosubscribe is refused. */
const PAHO_ACL = [
  { topic: '#', access: 'readwrite' },
  { topic: 'test/nosubscribe', access: 'deny' },
];

const tmp = tempDir('egw-paho-');
const procs: GatewayProcess[] = [];
after(async () => {
  for (const p of procs) await p.stop('SIGKILL');
  tmp.cleanup();
});

/** config/gateway.yaml with every listener on an ephemeral port and its own data_dir. */
function defaultConfig(name: string, acl: boolean, keepaliveMax?: number): string {
  const doc = parseDocument(readFileSync(join(ROOT, 'config/gateway.yaml'), 'utf8'));
  doc.setIn(['gateway', 'data_dir'], join(tmp.dir, name));
  doc.setIn(['metrics', 'port'], 0);
  doc.setIn(['coap', 'port'], 0);
  doc.setIn(['broker', 'port'], 0);
  if (acl) doc.setIn(['broker', 'loopback_acl'], doc.createNode(PAHO_ACL));
  if (keepaliveMax !== undefined) doc.setIn(['broker', 'keepalive_max_s'], keepaliveMax);
  return tmp.file(`${name}.yaml`, doc.toString());
}

interface PahoResult {
  passed: number;
  total: number;
  failed: string[];
  output: string;
}

async function runPaho(name: string, acl: boolean, v5 = false): Promise<PahoResult> {
  // The v5 suite's test_server_keep_alive wants Server Keep Alive 60 for a client asking 120.
  const gw = GatewayProcess.start(defaultConfig(name, acl, v5 && acl ? 60 : undefined));
  procs.push(gw);
  const listening = await gw.waitForLog((l) => l.msg === 'MQTT broker listening', 20000);
  await gw.ready(20000);
  const port = listening['port'] as number;
  // -B: no __pycache__ in the source tree. Bounded: the suite sleeps ~40 s in total.
  const child = spawn('python3', ['-B', v5 ? RUNNER5 : RUNNER, '127.0.0.1', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), v5 ? 540000 : 180000);
  await new Promise((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  assert.equal(await gw.stop('SIGTERM'), 0);
  const m = /PAHO5? RESULT (\d+)\/(\d+) failed: (.*)/.exec(output);
  assert.ok(m, `no result line from the Paho suite:\n${output}`);
  return { passed: Number(m[1]), total: Number(m[2]), failed: m[3] === '-' ? [] : m[3]!.split(' '), output };
}

test(
  'Eclipse Paho MQTT 3.1.1 interoperability suite: 10/10 with the documented ACL, ≥ 9/10 on the default config',
  { skip: noPython, timeout: 240000 },
  async () => {
    // Both runs side by side: the suite mostly sleeps.
    const [plain, withAcl] = await Promise.all([runPaho('default', false), runPaho('acl', true)]);
    console.log(`paho default config: ${plain.passed}/${plain.total} failed: ${plain.failed.join(' ') || '-'}`);
    console.log(`paho documented ACL: ${withAcl.passed}/${withAcl.total} failed: ${withAcl.failed.join(' ') || '-'}`);
    assert.equal(plain.total, 10);
    assert.equal(withAcl.total, 10);
    assert.deepEqual(withAcl.failed, [], withAcl.output);
    assert.ok(plain.passed >= 9, plain.output);
    // The one test the default config may fail is the one that needs a refused subscription.
    assert.ok(
      plain.failed.every((f) => f === 'test_subscribe_failure'),
      plain.output,
    );
  },
);

/**
 * MQTT 5 suite (client_test5.py, each test in its own process with a 40 s bound; docs/broker.md
 * "MQTT 5"). Mosquitto 2.0.11 passes 21/27 here. The failures allowed are the explained ones:
 * aedes 2.0.0-beta.1 does not limit what it sends to a client's Receive Maximum
 * (test_flow_control1), has no server-assigned topic aliases (test_server_topic_alias, optional),
 * sends one Subscription Identifier for overlapping subscriptions (test_subscribe_identifiers) and
 * no shared subscriptions (test_shared_subscriptions); Paho's codec rejects SUBACK 0x87
 * (test_subscribe_failure), and test_flow_control2 reads a reset connection before the DISCONNECT
 * 0x93 the broker sends. On the default config, test_server_keep_alive (keepalive_max_s 600 > 120)
 * cannot pass either.
 */
const V5_EXPLAINED = new Set([
  'test_flow_control1',
  'test_flow_control2',
  'test_server_topic_alias',
  'test_subscribe_identifiers',
  'test_shared_subscriptions',
  'test_subscribe_failure',
  'test_server_keep_alive',
]);

test(
  "Eclipse Paho MQTT 5 interoperability suite: at least Mosquitto 2.0.11's 21/27, every failure an explained one",
  { skip: noPython, timeout: 600000 },
  async () => {
    const [plain, withAcl] = await Promise.all([runPaho('v5-default', false, true), runPaho('v5-acl', true, true)]);
    console.log(`paho v5 default config: ${plain.passed}/${plain.total} failed: ${plain.failed.join(' ') || '-'}`);
    console.log(
      `paho v5 documented config: ${withAcl.passed}/${withAcl.total} failed: ${withAcl.failed.join(' ') || '-'}`,
    );
    for (const r of [plain, withAcl]) {
      assert.equal(r.total, 27);
      assert.ok(r.passed >= 21, r.output);
      assert.deepEqual(
        r.failed.filter((f) => !V5_EXPLAINED.has(f)),
        [],
        r.output,
      );
    }
  },
);
