// The default config (config/gateway.yaml) run as a process, with real peers: mosquitto_sub /
// mosquitto_pub against its broker, libcoap's coap-client for CoAP ingest, a real mosquitto as the
// cloud. Only ports, data_dir and the uplink URL are changed (so tests can run side by side), plus
// one serial-lines driver on a socat pty for the offline transition.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { GatewayProcess, tempDir } from '../helpers/gateway-process.js';
import { PtyPair, sleep, waitFor } from './drivers-support/harness.js';
import { Cloud, CloudSubscriber, freePort } from './uplink-cloud.js';

const DEFAULT_YAML = new URL('../../../config/gateway.yaml', import.meta.url).pathname;

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp6');
  s.bind(0, '::');
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** mosquitto_sub -v as a child; every line `topic payload` (retained flag with -F). */
class Sub {
  readonly lines: string[] = [];
  readonly proc: ChildProcess;
  constructor(port: number, filter: string, extra: string[] = []) {
    this.proc = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', filter, '-v', ...extra], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    createInterface({ input: this.proc.stdout! }).on('line', (l) => this.lines.push(l));
  }
  on(topic: string): string[] {
    return this.lines.filter((l) => l.startsWith(`${topic} `)).map((l) => l.slice(topic.length + 1));
  }
  stop(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM');
  }
}

test('every accepted reading and device status on the local broker and the cloud (default config)', async (t) => {
  const tmp = tempDir('egw-local-');
  const cloud = await Cloud.create();
  const pty = new PtyPair(join(tmp.dir, 'line-dev'), join(tmp.dir, 'line-peer'));
  await pty.start();
  const mqttPort = await freePort();
  const coapPort = await freeUdpPort();
  const metricsPort = await freePort();
  let yaml = readFileSync(DEFAULT_YAML, 'utf8');
  const swap = (from: string, to: string) => {
    assert.ok(yaml.includes(from), `default config has ${from}`);
    yaml = yaml.replace(from, to);
  };
  swap('data_dir: ./data', `data_dir: ${join(tmp.dir, 'data')}`);
  swap('  port: 1883', `  port: ${mqttPort}`);
  swap('  port: 5683', `  port: ${coapPort}`);
  swap('  port: 9464', `  port: ${metricsPort}`);
  swap('url: mqtt://127.0.0.1:1884', `url: ${cloud.url}`);
  // One serial-lines entry right after the simulated sensor's.
  swap(
    '  - type: simulated\n',
    `  - type: serial-lines\n    id: line-1\n    path: ${pty.dev}\n    baud: 115200\n    format: json\n  - type: simulated\n`,
  );
  const cfg = tmp.file('gateway.yaml', yaml);
  const interval = Number(/^ {4}interval_ms: (\d+)/m.exec(yaml)![1]); // the simulated sensor's
  const cloudSub = await CloudSubscriber.connect(cloud.url, 'edge/gw-1/devices/#');
  const gw = GatewayProcess.start(cfg);
  const subs: Sub[] = [];
  t.after(async () => {
    for (const s of subs) s.stop();
    await gw.stop();
    await cloudSub.client.endAsync();
    await cloud.close();
    await pty.kill();
    tmp.cleanup();
  });
  await gw.ready(20000);
  const sensors = new Sub(mqttPort, 'sensors/#');
  subs.push(sensors);
  await sleep(300); // mosquitto_sub subscribed

  await t.test('the simulated sensor shows up on sensors/sim-1/data within one interval', async () => {
    await waitFor(() => sensors.on('sensors/sim-1/data').length > 0, interval + 2000, 'a sim-1 reading');
    const doc = JSON.parse(sensors.on('sensors/sim-1/data')[0]!) as { ts: number; values: object; quality: string };
    assert.equal(typeof doc.ts, 'number');
    assert.ok(Object.keys(doc.values).length > 0);
    assert.match(doc.quality, /^(good|uncertain|bad)$/);
  });

  await t.test('a reading posted over CoAP (coap-client) appears there too', async () => {
    const r = spawnSync(
      'coap-client-notls',
      ['-m', 'post', '-t', '50', '-e', '{"temperature":21.5}', `coap://127.0.0.1:${coapPort}/sensors/coap-1`],
      { encoding: 'utf8', timeout: 10000 },
    );
    assert.equal(r.status, 0, r.stderr);
    await waitFor(() => sensors.on('sensors/coap-1/data').length > 0, 5000, 'the CoAP reading');
    const doc = JSON.parse(sensors.on('sensors/coap-1/data')[0]!) as { values: { temperature: number } };
    assert.equal(doc.values.temperature, 21.5);
  });

  await t.test('a reading a client published on sensors/X/data is not published a second time', async () => {
    const r = spawnSync(
      'mosquitto_pub',
      ['-h', '127.0.0.1', '-p', String(mqttPort), '-q', '1', '-t', 'sensors/mq-1/data', '-m', '{"v":7}'],
      { encoding: 'utf8', timeout: 10000 },
    );
    assert.equal(r.status, 0, r.stderr);
    await waitFor(() => sensors.on('sensors/mq-1/data').length > 0, 5000, 'the MQTT reading');
    // The gateway's own publish would follow its commit (commit_wait_ms 10): wait well past it.
    await sleep(1000);
    assert.deepEqual(sensors.on('sensors/mq-1/data'), ['{"v":7}']);
  });

  await t.test('a serial reading appears too', async () => {
    const peer = spawn('sh', ['-c', `printf '{"level":3}\\n' > ${pty.peer}`]);
    await once(peer, 'exit');
    await waitFor(() => sensors.on('sensors/line-1/data').length > 0, 5000, 'the serial reading');
    assert.equal((JSON.parse(sensors.on('sensors/line-1/data')[0]!) as { values: { level: number } }).values.level, 3);
  });

  await t.test('device status: retained online locally, on the cloud as HIGH; offline when the port goes', async () => {
    // A subscriber that comes later gets the retained status of every device.
    const status = new Sub(mqttPort, 'devices/+/status', ['-F', '%t %r %p']);
    subs.push(status);
    await waitFor(() => status.on('devices/sim-1/status').length > 0, 5000, 'sim-1 status');
    const [retainFlag, payload] = splitOnce(status.on('devices/sim-1/status')[0]!);
    assert.equal(retainFlag, '1', 'retained');
    assert.deepEqual(pick(JSON.parse(payload)), { online: true, reason: null, transport: 'simulated' });
    await waitFor(() => status.on('devices/line-1/status').length > 0, 5000, 'line-1 status');
    assert.equal(
      (JSON.parse(splitOnce(status.on('devices/line-1/status')[0]!)[1]) as { online: boolean }).online,
      true,
    );

    // The cloud: through the outbox, under {prefix}/devices/{id}/status.
    const onCloud = (id: string) =>
      cloudSub.messages
        .filter((m) => m.topic === `edge/gw-1/devices/${id}/status`)
        .map((m) => JSON.parse(m.payload.toString()) as { online: boolean; reason: string | null });
    await cloudSub.waitFor(() => onCloud('sim-1').length > 0 && onCloud('line-1').length > 0, 10000);
    assert.equal(onCloud('sim-1')[0]!.online, true);

    // Unplug: the driver reports the port closed → offline, locally (retained) and on the cloud.
    await pty.kill();
    await waitFor(
      () => status.on('devices/line-1/status').some((l) => l.includes('"online":false')),
      10000,
      'line-1 offline locally',
    );
    await cloudSub.waitFor(() => onCloud('line-1').some((d) => !d.online), 10000);
    const off = onCloud('line-1').find((d) => !d.online)!;
    assert.equal(typeof off.reason, 'string');

    // The class the default rules give devices/+/status: HIGH (counted per class on delivery).
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const high = Number(/edge_gateway_queue_sent_messages_total\{class="HIGH"\} (\d+)/.exec(text)?.[1] ?? 0);
    assert.ok(high >= 3, `HIGH carried the status messages (${high})`);
  });
});

function splitOnce(line: string): [string, string] {
  const i = line.indexOf(' ');
  return [line.slice(0, i), line.slice(i + 1)];
}

function pick(doc: { online: boolean; reason: string | null; transport: string }) {
  return { online: doc.online, reason: doc.reason, transport: doc.transport };
}
