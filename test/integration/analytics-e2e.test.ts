import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { Cloud, CloudSubscriber, freePort } from './uplink-cloud.js';

const log = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(fn: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function config(dir: string, brokerPort: number, cloudUrl: string, forS: number) {
  return parseConfig(
    `version: 1
gateway: { id: gw-an, data_dir: ${JSON.stringify(dir)}, shutdown_timeout_ms: 3000 }
metrics: { enabled: false }
coap: { enabled: false }
broker: { host: 127.0.0.1, port: ${brokerPort}, connect_rate_per_ip: 0 }
uplink: { url: ${JSON.stringify(cloudUrl)}, reconnect: { min_ms: 100, max_ms: 500, jitter: 0.2 } }
ota: { enabled: false }
analytics:
  persist_interval_s: 1
  rules:
    - name: boiler-hot
      devices: "boiler-*"
      value: temperature
      when: { above: 80 }
      for_s: ${forS}
      clear: { below: 75 }
      on_raise: { payload: { heater: off } }
`,
    'analytics-e2e.yaml',
    {},
  );
}

test('readings over MQTT → alert on alerts/{id} locally and in the cloud as CRITICAL → command out on commands/{id}', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-an-e2e-'));
  const cloud = await Cloud.create();
  await cloud.start();
  const sub = await CloudSubscriber.connect(cloud.url);
  const brokerPort = await freePort();
  const gw = new Gateway({ config: config(dir, brokerPort, cloud.url, 1), log });
  await gw.start();
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, { clientId: 'boiler-1' });
  t.after(async () => {
    await dev.endAsync();
    await gw.stop();
    await sub.client.endAsync();
    await cloud.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const local: { topic: string; body: Record<string, unknown> }[] = [];
  dev.on('message', (topic, payload) =>
    local.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> }),
  );
  await dev.subscribeAsync(['alerts/#', 'commands/#'], { qos: 1 });
  for (let i = 0; i < 4; i++) {
    await dev.publishAsync('sensors/boiler-1/data', JSON.stringify({ temperature: 85 + i }), { qos: 1 });
    await sleep(400);
  }
  const alert = await until(() => local.find((m) => m.topic === 'alerts/boiler-1'), 5000, 'local alert');
  assert.equal(alert.body['event'], 'raised');
  assert.equal(alert.body['rule'], 'boiler-hot');
  assert.equal(alert.body['priority'], 'CRITICAL');
  const cmd = await until(() => local.find((m) => m.topic === 'commands/boiler-1'), 5000, 'command');
  assert.deepEqual(cmd.body, { heater: 'off' });
  const up = await until(
    () => sub.messages.find((m) => m.topic === 'edge/gw-an/alerts/boiler-1'),
    10000,
    'cloud alert',
  );
  assert.equal((JSON.parse(up.payload.toString()) as { id: string }).id, alert.body['id']);
  const sentCritical = gw.mgmt.get('queues')?.().classes.CRITICAL.sentMessages ?? 0;
  assert.ok(sentCritical >= 1, 'sent in the CRITICAL class');
  assert.equal(sub.messages.filter((m) => m.topic.includes('/commands/')).length, 0, 'commands stay local');
});

test('a restart in the middle of a duration keeps the time already held', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-an-e2e-'));
  const cloud = await Cloud.create();
  await cloud.start();
  const brokerPort = await freePort();
  t.after(async () => {
    await cloud.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const first = new Gateway({ config: config(dir, brokerPort, cloud.url, 20), log });
  await first.start();
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, { clientId: 'boiler-2', reconnectPeriod: 0 });
  await dev.publishAsync('sensors/boiler-2/data', JSON.stringify({ temperature: 90 }), { qos: 1 });
  await sleep(14_000); // 14 of the 20 s held (the state is saved every second)
  await dev.endAsync(true);
  await first.stop();

  const second = new Gateway({ config: config(dir, brokerPort, cloud.url, 20), log });
  const t0 = performance.now();
  await second.start();
  t.after(() => second.stop());
  const view = () => second.mgmt.get('alerts')?.view() as { active: { rule: string }[] } | undefined;
  await until(() => view()?.active.length, 25_000, 'raised after the restart');
  const took = performance.now() - t0;
  // About 6 s were left (± the 1 s tick and save interval); starting over would take 20 s. The
  // bounds are wide so a slow machine cannot make it fail, yet far apart enough to tell the two.
  assert.ok(took >= 3000 && took < 15_000, `raised ${Math.round(took)} ms after the restart`);
});
