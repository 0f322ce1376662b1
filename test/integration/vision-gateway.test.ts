// Vision inside the real gateway: MQTT camera frames arrive through the gateway's own broker (aedes),
// results and reject commands leave through its publisher onto that broker. The service-level tests
// (vision.test.ts) wire a subscribe function by hand; this one catches what only the assembled
// gateway does (module start order, the broker's internal subscriptions, MQTT 5 properties).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrokerService } from '../../src/broker/broker.js';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log/logger.js';
import sharp from 'sharp';
import { partPng, rng } from '../../scripts/vision-synth.js';
import { collect, connect } from './broker-harness.js';
import { DEMO_MODEL } from './vision-harness.js';

async function startVisionGateway(dir: string): Promise<{ gateway: Gateway; url: string }> {
  const yaml = [
    'version: 1',
    'gateway:',
    `  data_dir: ${dir}`,
    '  log_level: silent',
    'metrics: { enabled: false }',
    'coap: { enabled: false }',
    'uplink: { enabled: false }',
    'broker: { host: 127.0.0.1, port: 0 }',
    'vision:',
    '  enabled: true',
    `  model: { path: ${DEMO_MODEL} }`,
    '  warmup_runs: 1',
    '  cameras: [{ id: cam7, kind: mqtt }]',
    '  deadline_ms: 5000',
    // Frames are published back to back: the default queue of 4 could drop one on a loaded machine.
    '  queue_per_camera: 100',
    '  reject: [{ kind: command, device_id: gate }]',
  ].join('\n');
  const gateway = new Gateway({
    config: parseConfig(yaml, 'vision-gw.yaml', {}),
    log: createLogger({ level: 'silent' }),
    env: {},
  });
  await gateway.start();
  const broker = gateway.services.find((s) => s instanceof BrokerService) as BrokerService;
  return { gateway, url: `mqtt://127.0.0.1:${broker.port}` };
}

type Result = { partId: string; verdict: string; label: string | null; error?: string; latencyMs: { decode: number } };

test('MQTT camera frames through the gateway broker: results and reject commands on it, part id from topic or user property', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-vision-gw-'));
  const { gateway, url } = await startVisionGateway(dir);
  const watcher = await connect(url, { protocolVersion: 5, clientId: 'watcher' });
  const camera = await connect(url, { protocolVersion: 5, clientId: 'camera' });
  try {
    await watcher.subscribeAsync(['inspection/cam7/result', 'commands/gate'], { qos: 1 });
    const seen = collect(watcher);
    const png = await partPng('scratch', rng(12));
    await camera.publishAsync('camera/cam7/image/PART-1', png, { qos: 1 });
    await camera.publishAsync('camera/cam7/image', png, {
      qos: 1,
      properties: { userProperties: { part_id: 'PART-2' } },
    });
    // Two results and two reject commands (both parts are scratched), in any order.
    const msgs = await seen.next(4, 20000);
    const results = msgs
      .filter((m) => m.topic === 'inspection/cam7/result')
      .map((m) => JSON.parse(m.payload.toString()) as { partId: string; verdict: string; label: string });
    assert.deepEqual(results.map((r) => r.partId).sort(), ['PART-1', 'PART-2']);
    assert.ok(
      results.every((r) => r.verdict === 'defective' && r.label === 'scratch'),
      JSON.stringify(results),
    );
    const rejects = msgs
      .filter((m) => m.topic === 'commands/gate')
      .map((m) => JSON.parse(m.payload.toString()) as { part_id: string });
    assert.deepEqual(rejects.map((r) => r.part_id).sort(), ['PART-1', 'PART-2']);
  } finally {
    await watcher.endAsync();
    await camera.endAsync();
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('raw MQTT frames (user properties format/width/height): decided without decoding; bad properties or sizes are counted fail-safes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-vision-gw-'));
  const { gateway, url } = await startVisionGateway(dir);
  const watcher = await connect(url, { protocolVersion: 5, clientId: 'watcher' });
  const camera = await connect(url, { protocolVersion: 5, clientId: 'camera' });
  try {
    await watcher.subscribeAsync('inspection/cam7/result', { qos: 1 });
    const seen = collect(watcher);
    const png = await partPng('scratch', rng(12));
    // At the model's input size (64×64 RGB): used as is. At 128×96: resized by the gateway.
    const raw64 = await sharp(png).removeAlpha().resize(64, 64, { fit: 'fill' }).raw().toBuffer();
    const raw128 = await sharp(png).removeAlpha().resize(128, 96, { fit: 'fill' }).raw().toBuffer();
    const send = (part: string, payload: Buffer, props: Record<string, string>) =>
      camera.publishAsync(`camera/cam7/image/${part}`, payload, { qos: 1, properties: { userProperties: props } });
    await send('RAW-64', raw64, { format: 'rgb24', width: '64', height: '64' });
    await send('RAW-128', raw128, { format: 'rgb24', width: '128', height: '96' });
    await send('BAD-FORMAT', raw64, { format: 'bgr32', width: '64', height: '64' });
    await send('BAD-WIDTH', raw64, { format: 'rgb24', width: '6.4e1', height: '64' });
    await send('SHORT', raw64.subarray(0, 1000), { format: 'rgb24', width: '64', height: '64' });
    await send('AFTER', raw64, { format: 'rgb24', width: '64', height: '64' });
    const msgs = await seen.next(6, 20000);
    const byPart = new Map(msgs.map((m) => JSON.parse(m.payload.toString()) as Result).map((r) => [r.partId, r]));
    for (const ok of ['RAW-64', 'RAW-128', 'AFTER']) {
      const r = byPart.get(ok)!;
      assert.equal(r.verdict, 'defective', ok);
      assert.equal(r.label, 'scratch', ok);
    }
    for (const [bad, why] of [
      ['BAD-FORMAT', /format "bgr32" is not rgb24 or gray8/],
      ['BAD-WIDTH', /whole-number width and height/],
      ['SHORT', /raw frame has 1000 bytes; 64×64×3 = 12288 expected/],
    ] as const) {
      const r = byPart.get(bad)!;
      assert.equal(r.verdict, 'failsafe', bad);
      assert.match(r.error ?? '', why, bad);
    }
  } finally {
    await watcher.endAsync();
    await camera.endAsync();
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
