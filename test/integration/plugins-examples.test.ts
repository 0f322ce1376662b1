// The example plugins (plugins/) end to end with real peers: readings in over MQTT (mqtt.js as
// the device), a CoAP controller (a node `coap` server playing it), mosquitto as the cloud.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import coap from 'coap';
import mqtt from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { cleanup, EXAMPLES, freeUdpPort, log, sleep, until } from './plugins-harness.js';
import { Cloud, CloudSubscriber, freePort } from './uplink-cloud.js';

/** A CoAP controller: records every POST body to /cooling, answers 2.04. */
async function controller(): Promise<{ port: number; bodies: Record<string, unknown>[]; close(): Promise<void> }> {
  const port = await freeUdpPort();
  const bodies: Record<string, unknown>[] = [];
  const server = coap.createServer();
  server.on(
    'request',
    (req: { url: string; method: string; payload: Buffer }, res: { code: string; end(b?: string): void }) => {
      if (req.url === '/cooling' && req.method === 'POST') {
        bodies.push(JSON.parse(req.payload.toString()) as Record<string, unknown>);
        res.code = '2.04';
      } else res.code = '4.04';
      res.end();
    },
  );
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { port, bodies, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('overheat-guard, window-report and tag-mirror: MQTT reading → CoAP and MQTT commands, report in the cloud, mirrored driver reading', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-plugins-ex-'));
  const cloud = await Cloud.create();
  const sub = await CloudSubscriber.connect(cloud.url);
  const ctl = await controller();
  const mqttPort = await freePort();
  const config = parseConfig(
    `version: 1
gateway: { id: gw-ex, data_dir: ${JSON.stringify(dir)}, shutdown_timeout_ms: 5000 }
metrics: { enabled: false }
coap: { enabled: false }
broker: { host: 127.0.0.1, port: ${mqttPort}, connect_rate_per_ip: 0 }
uplink: { url: ${JSON.stringify(cloud.url)}, reconnect: { min_ms: 100, max_ms: 500, jitter: 0.2 } }
ota: { enabled: false }
drivers:
  - { type: x-tag-mirror, id: kiln-1-f, options: { source: kiln-1, value: temperature, as: temperature_f, scale: 1.8, offset: 32 } }
plugins:
  enabled: true
  dir: ${JSON.stringify(EXAMPLES)}
  plugins:
    - name: overheat-guard
      config: { controller: "coap://127.0.0.1:${ctl.port}/cooling", devices: "kiln-*", hysteresis: 3 }
    - { name: window-report, config: { interval_s: 0.5 } }
    - { name: tag-mirror, driver_types: [x-tag-mirror] }
`,
    'plugins-examples.yaml',
    {},
  );
  const gw = new Gateway({ config, log, env: {} });
  await gw.start();
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'kiln-1' });
  t.after(async () => {
    await dev.endAsync();
    await gw.stop();
    await sub.client.endAsync();
    await cloud.close();
    await ctl.close();
    cleanup(dir);
  });
  const local: { topic: string; body: Record<string, unknown> }[] = [];
  dev.on('message', (topic, p) => local.push({ topic, body: JSON.parse(p.toString()) as Record<string, unknown> }));
  await dev.subscribeAsync(['commands/#', 'reports/#'], { qos: 1 });
  // 70 → 76 (cool) → 77 (no repeat) → 74 (inside hysteresis: still cooling) → 86 (shutdown) → 71 (stop cooling)
  for (const temperature of [70, 76, 77, 74, 86, 71]) {
    await dev.publishAsync('sensors/kiln-1/data', JSON.stringify({ temperature }), { qos: 1 });
    await sleep(150);
  }
  await until(() => ctl.bodies.length >= 2, 5000, 'two controller POSTs');
  assert.deepEqual(
    ctl.bodies.map((b) => [b['action'], b['temperature']]),
    [
      ['cool', 76],
      ['stop', 71],
    ],
  );
  const shutdown = await until(() => local.find((m) => m.topic === 'commands/kiln-1'), 5000, 'shutdown command');
  assert.equal(shutdown.body['command'], 'shutdown');
  assert.equal(local.filter((m) => m.topic === 'commands/kiln-1').length, 1, 'one shutdown (hysteresis)');
  const report = await until(
    () => sub.messages.find((m) => m.topic === 'edge/gw-ex/reports/kiln-1/window'),
    8000,
    'window report in the cloud',
  );
  const body = JSON.parse(report.payload.toString()) as { values: Record<string, { count: number; max: number }> };
  assert.ok(body.values['temperature']!.count >= 1);
  const mirrored = await until(() => gw.context.latest.get('kiln-1-f'), 5000, 'mirrored reading');
  assert.equal(mirrored.values['temperature_f'], 71 * 1.8 + 32);
});
