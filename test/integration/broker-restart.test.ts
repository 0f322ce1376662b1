import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt';
import { GatewayProcess, tempDir } from '../helpers/gateway-process.js';
import { brokerConfigYaml, collect, connect, freePort, run } from './broker-harness.js';

/**
 * The built gateway as a child process (as systemd runs it), restarted between steps: retained
 * messages, persistent-session subscriptions and queued QoS 1 messages live in its SQLite file.
 */
const tmp = tempDir('egw-broker-restart-');
const procs: GatewayProcess[] = [];
after(async () => {
  for (const p of procs) await p.stop('SIGKILL');
  tmp.cleanup();
});

async function startProcess(cfg: string): Promise<GatewayProcess> {
  const p = GatewayProcess.start(cfg);
  procs.push(p);
  await p.ready(20000);
  return p;
}

/** Connects with clean=false, collecting from the first byte (queued messages may precede connectAsync's resolve). */
async function persistent(
  url: string,
  clientId: string,
): Promise<{ c: MqttClient; sessionPresent: boolean; got: ReturnType<typeof collect> }> {
  const c = mqtt.connect(url, { clientId, clean: false, reconnectPeriod: 0, connectTimeout: 5000, keepalive: 30 });
  const got = collect(c);
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  return { c, sessionPresent: connack.sessionPresent, got };
}

test('retained messages, subscriptions and queued QoS 1 messages survive SIGTERM and kill -9 restarts', async () => {
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  const cfg = tmp.file('gw.yaml', brokerConfigYaml(join(tmp.dir, 'data'), port, '', 'info'));
  let gw = await startProcess(cfg);

  // A persistent session (mqtt.js) and one of mosquitto_sub (-c = clean session off).
  const s1 = await persistent(url, 'persist-sub');
  assert.equal(s1.sessionPresent, false);
  await s1.c.subscribeAsync('q/#', { qos: 1 });
  await s1.c.endAsync();
  const m1 = await run('mosquitto_sub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-c',
    '-i',
    'mosq-persist',
    '-q',
    '1',
    '-t',
    'm/#',
    '-W',
    '1',
  ]);
  assert.ok(m1.code === 27 || m1.code === 0, `mosquitto_sub: ${m1.code} ${m1.stderr}`); // 27 = -W timeout

  const pub = await connect(url, { clientId: 'restart-pub' });
  await pub.publishAsync('r/state', 'kept', { qos: 1, retain: true });
  for (const i of [1, 2, 3]) await pub.publishAsync(`q/${i}`, `queued-${i}`, { qos: 1 });
  await pub.publishAsync('m/1', 'for-mosquitto', { qos: 1 });
  await pub.endAsync();

  assert.equal(await gw.stop('SIGTERM'), 0);
  gw = await startProcess(cfg);

  // Retained message after the restart.
  const r = await connect(url, { clientId: 'restart-ret' });
  const rgot = collect(r);
  await r.subscribeAsync('r/#', { qos: 1 });
  const [ret] = await rgot.next(1);
  assert.equal(ret!.payload.toString(), 'kept');
  assert.equal(ret!.retain, true);
  await r.endAsync();

  // The session is present and its queued messages arrive without subscribing again.
  const s2 = await persistent(url, 'persist-sub');
  assert.equal(s2.sessionPresent, true);
  const queued = await s2.got.next(3);
  assert.deepEqual(
    queued.map((m) => m.payload.toString()),
    ['queued-1', 'queued-2', 'queued-3'],
  );
  // mosquitto_sub's session got its message too.
  const m2 = await run('mosquitto_sub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-c',
    '-i',
    'mosq-persist',
    '-q',
    '1',
    '-t',
    'm/#',
    '-C',
    '1',
    '-W',
    '5',
  ]);
  assert.equal(m2.code, 0, m2.stderr);
  assert.equal(m2.stdout.trim(), 'for-mosquitto');
  // The subscription itself survived: a new message is routed to the session live.
  const pub2 = await connect(url, { clientId: 'restart-pub2' });
  await pub2.publishAsync('q/4', 'live-4', { qos: 1 });
  const [live] = (await s2.got.next(4)).slice(3);
  assert.equal(live!.payload.toString(), 'live-4');
  await s2.c.endAsync();

  // Queued while offline (and a new retained value), then the process is killed the moment the
  // PUBACK arrives (no graceful stop): the PUBACK is sent only after both are committed.
  await pub2.publishAsync('q/5', 'queued-5', { qos: 1 });
  await pub2.publishAsync('r/state', 'kept-2', { qos: 1, retain: true });
  assert.equal(await gw.stop('SIGKILL'), 'SIGKILL');
  pub2.end(true);
  gw = await startProcess(cfg);
  const s3 = await persistent(url, 'persist-sub');
  assert.equal(s3.sessionPresent, true);
  const [five] = await s3.got.next(1);
  assert.equal(five!.payload.toString(), 'queued-5');
  await s3.c.endAsync();
  const r2 = await connect(url, { clientId: 'restart-ret2' });
  const r2got = collect(r2);
  await r2.subscribeAsync('r/#', { qos: 1 });
  assert.equal((await r2got.next(1))[0]!.payload.toString(), 'kept-2');
  await r2.endAsync();
  assert.equal(await gw.stop('SIGTERM'), 0);
});
