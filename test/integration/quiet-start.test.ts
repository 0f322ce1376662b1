import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GatewayProcess, tempDir } from '../helpers/gateway-process.js';
import { freePort } from './uplink-cloud.js';

test('a normal start and stop of the default config reads as normal: no warn or error but the unreachable cloud', async (t) => {
  const tmp = tempDir('egw-quiet-');
  t.after(() => tmp.cleanup());
  // The embedded default config, with its ports and data dir moved so tests can run side by side.
  const [mqtt, coap, http, cloud] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const text = readFileSync('config/gateway.yaml', 'utf8')
    .replace('data_dir: ./data', `data_dir: ${tmp.dir}/data`)
    .replace(/^(\s+)port: 1883$/m, `$1port: ${mqtt}`)
    .replace(/^(\s+)port: 5683$/m, `$1port: ${coap}`)
    .replace(/^(\s+)port: 9464$/m, `$1port: ${http}`)
    .replace('url: mqtt://127.0.0.1:1884', `url: mqtt://127.0.0.1:${cloud}`)
    .replace('interval_ms: 5000', 'interval_ms: 200');
  for (const p of [mqtt, coap, http, cloud]) assert.ok(text.includes(String(p)), `port ${p} substituted`);
  const gw = GatewayProcess.start(tmp.file('gateway.yaml', text), { EDGE_GATEWAY_TOKEN: '' });
  await gw.ready(20000);
  await gw.waitForLog((l) => /driver sim-1 connected/.test(l.msg), 5000);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await gw.stop('SIGTERM'), 0);
  const loud = gw.logs.filter((l) => ['warn', 'error', 'fatal'].includes(String(l.level)));
  const unexpected = loud.filter((l) => !(l['mod'] === 'uplink' && l['code'] === 'EGW_UPLINK_OFFLINE'));
  assert.deepEqual(
    unexpected.map((l) => `${String(l['mod'])}: ${l.msg}`),
    [],
    'only the unreachable cloud is a warning',
  );
  const msgs = gw.logs.map((l) => l.msg);
  assert.ok(!msgs.includes('outbox write ok'), 'no "outbox write ok" at start');
  assert.ok(!msgs.includes('uplink offline'), 'no "uplink offline" at start');
  assert.ok(msgs.some((m) => m.startsWith('uplink connecting')));
});
