import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coapClient, startGateway } from './coap-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('GET /sensors/{id}/history serves kept readings to libcoap, oldest first; bad queries are refused', async (t) => {
  const h = await startGateway(`history:
  min_interval_s: 0
  flush_interval_ms: 100
drivers:
  - { type: simulated, id: sim-h, interval_ms: 50, dropout_probability: 0 }
`);
  t.after(() => h.close());
  let body: { deviceId: string; readings: { ts: number; values: Record<string, unknown> }[] } | undefined;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const r = await coapClient(['-m', 'get', '-B', '5', h.url('/sensors/sim-h/history?limit=5')]);
    if (r.stdout.trim().startsWith('{')) {
      body = JSON.parse(r.stdout) as typeof body;
      if (body!.readings.length === 5) break;
    }
    await sleep(200);
  }
  assert.ok(body, 'history answered');
  assert.equal(body.deviceId, 'sim-h');
  assert.equal(body.readings.length, 5);
  const ts = body.readings.map((r) => r.ts);
  assert.deepEqual(
    ts,
    [...ts].sort((a, b) => a - b),
    'oldest first',
  );
  assert.ok('temperature' in body.readings[0]!.values);
  const since = ts[2]!;
  const later = JSON.parse(
    (await coapClient(['-m', 'get', '-B', '5', h.url(`/sensors/sim-h/history?since=${since}&limit=1000`)])).stdout,
  ) as typeof body;
  assert.ok(later.readings.every((r) => r.ts >= since));
  assert.ok(later.readings.length >= 3);

  for (const [q, code] of [
    ['/sensors/sim-h/history?limit=0', '4.00'],
    ['/sensors/sim-h/history?limit=1001', '4.00'],
    ['/sensors/sim-h/history?limit=-1', '4.00'],
    ['/sensors/sim-h/history?since=1e9', '4.00'],
    ['/sensors/sim-h/history?evil=1', '4.02'],
    ['/sensors/nobody/history', '4.04'],
  ] as const) {
    const r = await coapClient(['-m', 'get', '-B', '5', h.url(q)]);
    assert.match(r.stdout + r.stderr, new RegExp(code.replace('.', '\\.')), `${q} → ${code}`);
  }
});
