import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { BrokerService } from '../../../src/broker/broker.js';
import { parseConfig } from '../../../src/config/load.js';
import { DeviceRegistry } from '../../../src/devices/registry.js';
import { createLogger } from '../../../src/log/logger.js';
import { createRegistry } from '../../../src/metrics/server.js';
import { Pipeline } from '../../../src/pipeline/pipeline.js';
import { normaliseJson } from '../../../src/pipeline/normalise.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { GatewayPublisher } from '../../../src/publisher/publisher.js';
import { readingJson } from '../../../src/publisher/readings.js';
import { binaryReadingCodec } from '../../../src/queue/codec.js';
import { Outbox } from '../../../src/queue/outbox.js';
import { outboxPort } from '../../../src/queue/port.js';
import { openDatabase } from '../../../src/store/db.js';

const log = createLogger({ level: 'silent' });

/** A real broker on an ephemeral port, a real outbox on a temp SQLite file, a real subscriber. */
async function setup(t: { after(fn: () => Promise<void> | void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'egw-pub-'));
  const config = parseConfig(
    `version: 1\ngateway:\n  data_dir: ${dir}\nbroker:\n  port: 0\nqueue:\n  outbox:\n    commit_wait_ms: 2\n`,
    'test',
    {},
  );
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const devices = new DeviceRegistry(db);
  const pipeline = new Pipeline({ log, maxPending: 1000 });
  const broker = new BrokerService({ config: config.broker, log, pipeline, devices, registry: createRegistry(), db });
  await broker.start();
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0, connectTimeout: 5000 });
  const got: { topic: string; payload: string; retain: boolean }[] = [];
  sub.on('message', (topic, payload, packet) =>
    got.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  await sub.subscribeAsync('#', { qos: 1 });
  t.after(async () => {
    await sub.endAsync();
    await broker.stop();
    outbox.close();
    if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const stats = () => outboxPort(outbox).classStats();
  const waitFor = async (pred: () => boolean, what: string) => {
    for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(pred(), what);
  };
  return { broker, outbox, db, got, stats, waitFor };
}

test('local only: delivered on the local broker, nothing committed to the outbox', async (t) => {
  const { broker, outbox, got, stats, waitFor } = await setup(t);
  const pub = new GatewayPublisher({ log, local: broker, uplink: outbox });
  const out = await pub.publish({ topic: 'alerts/press-1', payload: '{"level":"high"}', uplink: false });
  assert.deepEqual(out, { local: true, uplink: false });
  await waitFor(() => got.length === 1, 'the subscriber gets the message');
  assert.deepEqual(got[0], { topic: 'alerts/press-1', payload: '{"level":"high"}', retain: false });
  assert.equal(stats().CRITICAL.depth, 0);
});

test('uplink only: committed with the class the queue rules give, not seen locally', async (t) => {
  const { broker, outbox, got, stats } = await setup(t);
  const pub = new GatewayPublisher({ log, local: broker, uplink: outbox });
  const out = await pub.publish({ topic: 'devices/d1/status', payload: '{"online":true}', local: false });
  assert.deepEqual(out, { local: false, uplink: true });
  // Default rules: devices/+/status → HIGH.
  assert.equal(stats().HIGH.depth, 1);
  const msg = outboxPort(outbox).take('HIGH')!;
  assert.equal(msg.topic, 'devices/d1/status');
  assert.equal(Buffer.from(msg.payload).toString(), '{"online":true}');
  assert.equal(msg.contentType, 'application/json');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(got.length, 0);
});

test('both: retained locally, committed with an explicit priority, TTL and labels', async (t) => {
  const { broker, outbox, got, stats, waitFor } = await setup(t);
  const pub = new GatewayPublisher({ log, local: broker, uplink: outbox });
  const out = await pub.publish({
    topic: 'inspection/cam-1/result',
    payload: new Uint8Array([123, 125]),
    retain: true,
    priority: 'LOW',
    ttlS: 60,
    labels: ['good'],
    source: 'vision',
  });
  assert.deepEqual(out, { local: true, uplink: true });
  await waitFor(() => got.length === 1, 'the subscriber gets the message');
  assert.equal(got[0]!.payload, '{}');
  assert.equal(stats().LOW.depth, 1, 'an explicit priority wins over the rules (inspection/# → HIGH)');
  assert.equal(stats().HIGH.depth, 0);
  // Retained: a subscriber that comes later still gets it.
  const late = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0 });
  const lateGot: boolean[] = [];
  late.on('message', (_t, _p, packet) => lateGot.push(packet.retain));
  await late.subscribeAsync('inspection/#');
  await waitFor(() => lateGot.length === 1, 'the retained message reaches a later subscriber');
  assert.equal(lateGot[0], true);
  await late.endAsync();
});

test('outbox commit failure rejects the publish (the message was not accepted for the cloud)', async (t) => {
  const { broker, outbox, db, got, waitFor } = await setup(t);
  const pub = new GatewayPublisher({ log, local: broker, uplink: outbox });
  db.close(); // every later INSERT fails
  await assert.rejects(
    pub.publish({ topic: 'alerts/press-1', payload: '{"level":"high"}' }),
    (err: Error & { code?: string }) => err.code === 'EGW_OUTBOX_COMMIT',
  );
  assert.equal(pub.counters.uplinkFailures, 1);
  // The local leg is independent of the outbox: local subscribers still got it.
  await waitFor(() => got.length === 1, 'local delivery happened');
});

test('neither target configured: resolves with nothing done', async () => {
  const pub = new GatewayPublisher({ log });
  assert.deepEqual(await pub.publish({ topic: 'alerts/x', payload: 'x' }), { local: false, uplink: false });
});

test('local publish failure (broker stopped) is reported as local: false, the commit still counts', async (t) => {
  const { broker, outbox, stats } = await setup(t);
  await broker.stop();
  const pub = new GatewayPublisher({ log, local: broker, uplink: outbox });
  assert.deepEqual(await pub.publish({ topic: 'alerts/x', payload: '{}' }), { local: false, uplink: true });
  assert.equal(stats().CRITICAL.depth, 1);
});

test('local reading JSON is the structured form the shared normaliser accepts (one format both ways)', () => {
  const r: Reading = {
    deviceId: 'sim-1',
    ts: 1_795_992_040_531,
    values: { temperature: 21.5, door: false, level: null, mode: 'auto' },
    quality: 'uncertain',
    source: 'simulated',
    units: { temperature: '°C' },
  };
  const back = normaliseJson(Buffer.from(readingJson(r)), 'sim-1', 'mqtt', 0);
  assert.equal(back.problemCount, 0);
  assert.deepEqual(back.readings, [{ ...r, source: 'mqtt' }]);
  assert.equal(
    readingJson({ ...r, units: undefined }),
    '{"ts":1795992040531,"values":{"temperature":21.5,"door":false,"level":null,"mode":"auto"},"quality":"uncertain"}',
  );
});
