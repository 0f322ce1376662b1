import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { Cloud, freePort } from './uplink-cloud.js';
import { gatewayYaml } from './uplink-scenarios.js';

interface AlertMsg {
  event: string;
  id: string;
  value: number;
}

async function until<T>(fn: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function device(port: number, seen: AlertMsg[]): Promise<MqttClient> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'boiler-9', reconnectPeriod: 0 });
  c.on('message', (_topic, payload) => seen.push(JSON.parse(payload.toString()) as AlertMsg));
  await c.subscribeAsync('alerts/#', { qos: 1 });
  return c;
}

test('kill -9 right after an alert went out: after the restart the same alert clears, and the next one gets a new id', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-an-crash-'));
  const cloud = await Cloud.create();
  t.after(async () => {
    await cloud.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const brokerPort = await freePort();
  const configPath = join(dir, 'gateway.yaml');
  // The periodic save is an hour away: only the save of the alert itself can bring it back.
  const rules = [
    'analytics:',
    '  persist_interval_s: 3600',
    '  rules:',
    '    - { name: hot, devices: "boiler-*", value: temperature, when: { above: 80 }, clear: { below: 75 } }',
  ].join('\n');
  writeFileSync(configPath, gatewayYaml(join(dir, 'data'), brokerPort, cloud.url, rules));

  const seen: AlertMsg[] = [];
  const first = GatewayProcess.start(configPath);
  t.after(() => first.stop('SIGKILL'));
  await first.ready(20000);
  let dev = await device(brokerPort, seen);
  await dev.publishAsync('sensors/boiler-9/data', JSON.stringify({ temperature: 90 }), { qos: 1 });
  const raised = await until(() => seen.find((m) => m.event === 'raised'), 10000, 'the raised alert');
  await first.stop('SIGKILL');
  await dev.endAsync(true);

  // What the dead process left on disk.
  const db = new Database(join(dir, 'data', 'gateway.db'), { readonly: true });
  const rows = db.prepare('SELECT device, state FROM analytics_tracks').all() as { device: string; state: string }[];
  const seq = db.prepare("SELECT v FROM analytics_meta WHERE k = 'seq'").get() as { v: string } | undefined;
  db.close();
  assert.deepEqual(
    rows.map((r) => [r.device, (JSON.parse(r.state) as { active: { id: string } | null }).active?.id]),
    [['boiler-9', raised.id]],
  );
  assert.equal(Number(seq?.v), 1);

  const second = GatewayProcess.start(configPath);
  t.after(() => second.stop('SIGKILL'));
  await second.ready(20000);
  dev = await device(brokerPort, seen);
  t.after(() => dev.endAsync(true));
  await dev.publishAsync('sensors/boiler-9/data', JSON.stringify({ temperature: 70 }), { qos: 1 });
  const cleared = await until(() => seen.find((m) => m.event === 'cleared'), 10000, 'the clear after the restart');
  assert.equal(cleared.id, raised.id);
  await dev.publishAsync('sensors/boiler-9/data', JSON.stringify({ temperature: 95 }), { qos: 1 });
  const again = await until(() => seen.filter((m) => m.event === 'raised')[1], 10000, 'the next alert');
  assert.notEqual(again.id, raised.id);
  assert.equal(again.value, 95);
});
