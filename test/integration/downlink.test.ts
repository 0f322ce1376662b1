// The two-way cloud link against a real mosquitto playing the cloud (docs/uplink.md): commands sent
// while the gateway is offline reach a local MQTT device and a Modbus register (pymodbus on a pty)
// after it reconnects, results go up; gateway commands over MQTT 5 request/response; refusals are
// audited; desired config with an error is refused with the error reported up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { GatewayProcess, tempDir } from '../helpers/gateway-process.js';
import { PtyPair, waitFor } from './drivers-support/harness.js';
import { Cloud, freePort } from './uplink-cloud.js';

const SLAVE = new URL('../../../test/fixtures/modbus/slave.py', import.meta.url).pathname;
const MAIN = new URL('../../src/main.js', import.meta.url).pathname;
const READ = 'downlink-test-read-token-0123456789';
const ADMIN = 'downlink-test-admin-token-0123456789';

/** `edge-gateway ctl ARGS` as an operator on site runs it. */
function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, 'ctl', ...args], { timeout: 20000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 99) : 0, stdout, stderr }),
    );
  });
}
const P = 'edge/gw-dl';

function config(dataDir: string, brokerPort: number, cloudUrl: string, pty: string, logLevel = 'info'): string {
  return `version: 1
gateway: { id: gw-dl, data_dir: ${JSON.stringify(dataDir)}, log_level: ${logLevel}, shutdown_timeout_ms: 5000 }
metrics: { enabled: false }
coap: { enabled: true, host: 127.0.0.1, port: 0 }
mgmt: { read_token: ${READ}, admin_token: ${ADMIN} }
broker: { host: 127.0.0.1, port: ${brokerPort}, connect_rate_per_ip: 0 }
uplink:
  url: ${JSON.stringify(cloudUrl)}
  reconnect: { min_ms: 100, max_ms: 1000, jitter: 0.5 }
  payload_format: json
  downlink:
    enabled: true
    allow: ['device:boiler', 'device:lamp-*', 'config.apply', 'config.desired']
    state_interval_ms: 200
drivers:
  - type: modbus-rtu
    id: plc
    path: ${pty}
    baud: 19200
    timeout_ms: 300
    slaves:
      - unit: 1
        device: boiler
        poll:
          - { name: setpoint, address: 10, type: uint16, scale: 0.1, writable: true, max: 100, interval_ms: 200 }
`;
}

interface Msg {
  topic: string;
  doc: Record<string, unknown>;
  corr: Buffer | undefined;
  retain: boolean;
  msgId: unknown;
}

async function cloudClient(url: string): Promise<{ client: MqttClient; msgs: Msg[] }> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: 'cloud-app', reconnectPeriod: 100 });
  const msgs: Msg[] = [];
  client.on('message', (topic, payload, packet) => {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(payload.toString('utf8')) as Record<string, unknown>; // what a cloud rule engine does
    } catch {
      doc = { notJson: payload.toString('hex') };
    }
    msgs.push({
      topic,
      doc,
      corr: packet.properties?.correlationData,
      retain: packet.retain,
      msgId: packet.properties?.userProperties?.['msg-id'],
    });
  });
  await client.subscribeAsync([`${P}/#`, 'cloud/replies/#'], { qos: 1 });
  return { client, msgs };
}

test('downlink end to end: offline commands after reconnect, gateway command, refusals audited, desired config refused and applied, conflict rule both ways', async (t) => {
  const tmp = tempDir('egw-downlink-');
  const cloud = await Cloud.create();
  const pty = new PtyPair(join(tmp.dir, 'dev'), join(tmp.dir, 'peer'));
  await pty.start();
  const writeLog = join(tmp.dir, 'writes.jsonl');
  const slave = spawn('/usr/bin/python3', [SLAVE, pty.peer, writeLog], { stdio: 'ignore' });
  const brokerPort = await freePort();
  const dataDir = join(tmp.dir, 'data');
  const cfgPath = tmp.file('gw.yaml', config(dataDir, brokerPort, cloud.url, pty.dev));
  let gw = GatewayProcess.start(cfgPath);
  const { client: app, msgs } = await cloudClient(cloud.url);
  const local: { lamp?: MqttClient } = {};
  t.after(async () => {
    await gw.stop('SIGKILL');
    local.lamp?.end(true);
    app.end(true);
    slave.kill('SIGKILL');
    await pty.kill();
    await cloud.close();
    tmp.cleanup();
  });
  await gw.ready(20000);
  // The retained state is published after the SUBSCRIBE: once it is here the session has the subscriptions.
  const state = await waitFor(() => msgs.find((m) => m.topic === `${P}/state`), 15000, 'reported state');
  assert.equal(state.doc['gatewayId'], 'gw-dl');
  assert.equal((state.doc['uplink'] as { state: string }).state, 'online');

  // A local MQTT device with a persistent session, subscribed to its commands.
  const lampGot: Record<string, unknown>[] = [];
  const lamp = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, {
    clientId: 'lamp-1',
    clean: false,
    reconnectPeriod: 100,
  });
  local.lamp = lamp;
  lamp.on('message', (_t, payload) => lampGot.push(JSON.parse(payload.toString()) as Record<string, unknown>));
  await lamp.subscribeAsync('commands/lamp-1', { qos: 1 });

  // JSON uplink: the boiler's readings arrive as JSON documents with their message id.
  const reading = await waitFor(
    () => msgs.find((m) => m.topic === `${P}/sensors/boiler/data`),
    15000,
    'a JSON reading of the boiler',
  );
  assert.equal(typeof reading.doc['id'], 'string');
  assert.equal(reading.doc['topic'], 'sensors/boiler/data');
  assert.equal((reading.doc['readings'] as { deviceId: string }[])[0]?.deviceId, 'boiler');

  // The gateway goes away; the cloud sends commands meanwhile (queued in the gateway's session).
  await gw.stop('SIGTERM');
  await app.publishAsync(`${P}/commands/lamp-1`, JSON.stringify({ id: 'c-lamp', on: true }), { qos: 1 });
  await app.publishAsync(`${P}/commands/boiler`, JSON.stringify({ id: 'c-boiler', set: { setpoint: 42.5 } }), {
    qos: 1,
  });
  await app.publishAsync(`${P}/commands/valve-9`, JSON.stringify({ id: 'c-valve', open: true }), { qos: 1 });
  await app.publishAsync(`${P}/gateway/commands`, JSON.stringify({ id: 'c-restart', command: 'restart' }), {
    qos: 1,
    properties: { responseTopic: 'cloud/replies/restart', correlationData: Buffer.from('r-1') },
  });
  gw = GatewayProcess.start(cfgPath);
  await gw.ready(20000);

  const result = (id: string) => () =>
    msgs.find((m) => m.doc['id'] === id && /command_result$|^cloud\/replies\//.test(m.topic));
  const lampResult = await waitFor(result('c-lamp'), 15000, 'lamp result');
  assert.equal(lampResult.topic, `${P}/devices/lamp-1/command_result`);
  assert.deepEqual(
    { ok: lampResult.doc['ok'], status: lampResult.doc['status'], via: lampResult.doc['via'] },
    { ok: true, status: 'delivered', via: 'local-mqtt' },
  );
  await waitFor(() => lampGot.find((c) => c['id'] === 'c-lamp'), 15000, 'the lamp gets its command');
  const boilerResult = await waitFor(result('c-boiler'), 20000, 'boiler result');
  assert.equal(boilerResult.topic, `${P}/devices/boiler/command_result`);
  assert.equal(boilerResult.doc['ok'], true, JSON.stringify(boilerResult.doc));
  await waitFor(
    () => existsSync(writeLog) && /"address": 10, "values": \[425\]/.test(readFileSync(writeLog, 'utf8')),
    10000,
    'the register write at the slave',
  );
  const valve = await waitFor(result('c-valve'), 10000, 'valve refusal');
  assert.equal(valve.doc['code'], 'EGW_DOWNLINK_DENIED');
  const restart = await waitFor(
    () => msgs.find((m) => m.topic === 'cloud/replies/restart'),
    10000,
    'restart refusal on the response topic',
  );
  assert.equal(restart.doc['code'], 'EGW_DOWNLINK_DENIED');
  assert.deepEqual(restart.corr, Buffer.from('r-1'));
  assert.equal(gw.child.exitCode, null, 'a refused restart does not restart');

  // The same command id again (a cloud retry, or a QoS 1 redelivery): answered with the first result, not
  // executed again — also after a kill -9 and restart (the ids are on disk). 43.0 would be written as 430.
  const again = JSON.stringify({ id: 'c-boiler', set: { setpoint: 43 } });
  const boilerResults = () => msgs.filter((m) => m.doc['id'] === 'c-boiler' && m.topic.endsWith('command_result'));
  await app.publishAsync(`${P}/commands/boiler`, again, { qos: 1 });
  await waitFor(() => boilerResults().length >= 2, 10000, 'the stored result again');
  await gw.stop('SIGKILL');
  gw = GatewayProcess.start(cfgPath);
  await gw.ready(20000);
  await app.publishAsync(`${P}/commands/boiler`, again, { qos: 1 });
  await waitFor(() => boilerResults().length >= 3, 15000, 'the stored result after kill -9');
  assert.deepEqual(
    boilerResults().map((m) => m.doc['status']),
    ['done', 'done', 'done'],
  );
  // Every copy of the result carries the same msg-id: the cloud can drop the repeats.
  assert.equal(new Set(boilerResults().map((m) => m.msgId)).size, 1);
  assert.match(String(boilerResults()[0]!.msgId), /^r-[0-9a-f]{24}$/);
  await new Promise((r) => setTimeout(r, 500));
  assert.doesNotMatch(readFileSync(writeLog, 'utf8'), /\[430\]/, 'the repeated command never reached the slave');
  assert.equal(readFileSync(writeLog, 'utf8').match(/\[425\]/g)?.length, 1, 'the first write exactly once');

  // A gateway command (config.apply) with MQTT 5 request/response.
  const newYaml = config(dataDir, brokerPort, cloud.url, pty.dev, 'debug');
  await app.publishAsync(
    `${P}/gateway/commands`,
    JSON.stringify({ id: 'c-apply', command: 'config.apply', args: { yaml: newYaml } }),
    { qos: 1, properties: { responseTopic: 'cloud/replies/apply', correlationData: Buffer.from('a-1') } },
  );
  const applied = await waitFor(() => msgs.find((m) => m.topic === 'cloud/replies/apply'), 15000, 'apply result');
  assert.equal(applied.doc['ok'], true, JSON.stringify(applied.doc));
  assert.deepEqual(applied.corr, Buffer.from('a-1'));
  assert.deepEqual((applied.doc['result'] as { applied: string[] }).applied, ['gateway.log_level']);
  assert.match(readFileSync(cfgPath, 'utf8'), /log_level: debug/);

  // Desired config with an error: refused, every error reported up (retained), the file untouched.
  const badYaml = newYaml.replace(`port: ${brokerPort}`, 'port: 70000').replace('baud: 19200', 'baud: -1');
  await app.publishAsync(`${P}/config/desired`, JSON.stringify({ version: 1, yaml: badYaml }), {
    qos: 1,
    retain: true,
  });
  const refused = await waitFor(
    () => msgs.find((m) => m.topic === `${P}/config/reported` && m.doc['version'] === 1),
    15000,
    'config reported',
  );
  assert.equal(refused.doc['status'], 'refused');
  const paths = (refused.doc['errors'] as { path: string }[]).map((e) => e.path);
  assert.ok(paths.includes('broker.port') && paths.includes('drivers[0].baud'), JSON.stringify(paths));
  assert.match(readFileSync(cfgPath, 'utf8'), /log_level: debug/);
  assert.doesNotMatch(readFileSync(cfgPath, 'utf8'), /70000/);

  // A valid newer version is applied; the state carries the new config revision and origin.
  await app.publishAsync(
    `${P}/config/desired`,
    JSON.stringify({ version: 2, yaml: newYaml.replace('log_level: debug', 'log_level: warn') }),
    {
      qos: 1,
      retain: true,
    },
  );
  const ok2 = await waitFor(
    () => msgs.find((m) => m.topic === `${P}/config/reported` && m.doc['version'] === 2),
    15000,
    'config reported v2',
  );
  assert.equal(ok2.doc['status'], 'applied', JSON.stringify(ok2.doc));
  await waitFor(
    () =>
      msgs.find(
        (m) =>
          m.topic === `${P}/state` &&
          (m.doc['config'] as { origin?: string; desiredVersion?: number }).desiredVersion === 2,
      ),
    15000,
    'state with desired version 2',
  );

  // Conflict rule, one way: a local edit (ctl config set over CoAP) after desired v2 wins over v2 sent again.
  const coapPort = Number((await gw.waitForLog((l) => l.msg === 'CoAP listening'))['port']);
  const localYaml = tmp.file('local.yaml', newYaml.replace('log_level: debug', 'log_level: error'));
  const set = await ctl(['--host', `127.0.0.1:${coapPort}`, '--token', ADMIN, 'config', 'set', localYaml]);
  assert.equal(set.code, 0, set.stderr);
  const v2doc = JSON.stringify({ version: 2, yaml: newYaml.replace('log_level: debug', 'log_level: warn') });
  await app.publishAsync(`${P}/config/desired`, v2doc, { qos: 1, retain: true });
  const overridden = await waitFor(
    () => msgs.find((m) => m.topic === `${P}/config/reported` && m.doc['status'] === 'overridden'),
    15000,
    'v2 again reported overridden',
  );
  assert.equal(overridden.doc['version'], 2);
  assert.match(readFileSync(cfgPath, 'utf8'), /log_level: error/);
  // The other way: a greater version wins over the local edit.
  await app.publishAsync(
    `${P}/config/desired`,
    JSON.stringify({ version: 3, yaml: newYaml.replace('log_level: debug', 'log_level: info') }),
    { qos: 1, retain: true },
  );
  const v3 = await waitFor(
    () => msgs.find((m) => m.topic === `${P}/config/reported` && m.doc['version'] === 3),
    15000,
    'config reported v3',
  );
  assert.equal(v3.doc['status'], 'applied');
  assert.match(readFileSync(cfgPath, 'utf8'), /log_level: info/);
  assert.deepEqual(v3.doc['config'], { revision: 4, origin: 'cloud', desiredVersion: 3 });

  // Every cloud command is in the /mgmt audit table beside the CoAP writes.
  const db = new Database(join(dataDir, 'gateway.db'), { readonly: true });
  try {
    const rows = db
      .prepare('SELECT resource, outcome, code FROM mgmt_audit WHERE source = ? ORDER BY id')
      .all('cloud') as {
      resource: string;
      outcome: string;
      code: string;
    }[];
    const seen = rows.map((r) => `${r.resource} ${r.outcome}`);
    for (const want of [
      'commands/lamp-1 ok',
      'commands/boiler ok',
      'commands/valve-9 denied',
      'gateway/restart denied',
      'gateway/config.apply ok',
      'config/desired invalid',
      'config/desired ok',
    ])
      assert.ok(seen.includes(want), `${want} in ${JSON.stringify(seen)}`);
  } finally {
    db.close();
  }
});

test('downlink hostile input from a real cloud client (mosquitto_pub): each refused with a reason, audited, the gateway keeps running', async (t) => {
  const tmp = tempDir('egw-downlink-hostile-');
  const cloud = await Cloud.create();
  const brokerPort = await freePort();
  const dataDir = join(tmp.dir, 'data');
  const cfgPath = tmp.file(
    'gw.yaml',
    `version: 1
gateway: { id: gw-dl, data_dir: ${JSON.stringify(dataDir)}, log_level: info, shutdown_timeout_ms: 5000 }
metrics: { enabled: false }
coap: { enabled: false }
broker: { host: 127.0.0.1, port: ${brokerPort}, connect_rate_per_ip: 0 }
uplink:
  url: ${JSON.stringify(cloud.url)}
  reconnect: { min_ms: 100, max_ms: 1000 }
  downlink: { enabled: true, allow: ['device:*', 'uplink.reconnect'], max_command_bytes: 1024, state_interval_ms: 200 }
`,
  );
  const gw = GatewayProcess.start(cfgPath);
  const { client: app, msgs } = await cloudClient(cloud.url);
  t.after(async () => {
    await gw.stop('SIGKILL');
    app.end(true);
    await cloud.close();
    tmp.cleanup();
  });
  await gw.ready(20000);
  await waitFor(() => msgs.find((m) => m.topic === `${P}/state`), 15000, 'reported state');
  const pub = (topic: string, payload: string) =>
    new Promise<void>((resolve, reject) => {
      const c = spawn('mosquitto_pub', ['-p', String(cloud.port), '-h', '127.0.0.1', '-q', '1', '-t', topic, '-s'], {
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exit ${code}`))));
      c.stdin.end(payload);
    });
  const results = () => msgs.filter((m) => /command_result$/.test(m.topic));
  const cases: [string, string, RegExp][] = [
    [`${P}/commands/pump`, '{"id": "h1", "set": ', /not JSON/],
    [`${P}/commands/pump`, JSON.stringify({ id: 'h2', pad: 'x'.repeat(5000) }), /exceeds 1024 B/],
    [`${P}/commands/bad$id`, JSON.stringify({ id: 'h3' }), /device id not allowed/],
    [`${P}/gateway/commands`, JSON.stringify({ id: 'h4', command: 'format-disk' }), /unknown gateway command/],
    [`${P}/gateway/commands`, JSON.stringify({ id: 'h5', command: 'restart' }), /not allowed/],
    [`${P}/commands/pump`, JSON.stringify({ set: { x: 1 } }), /needs an "id"/],
  ];
  for (const [i, [topic, payload, why]] of cases.entries()) {
    await pub(topic, payload);
    const r = await waitFor(() => results()[i], 10000, `refusal ${i}`);
    assert.equal(r.doc['ok'], false);
    assert.equal(r.doc['status'], 'refused');
    assert.match(String(r.doc['error']), why);
  }
  assert.equal(gw.child.exitCode, null);
  const db = new Database(join(dataDir, 'gateway.db'), { readonly: true });
  try {
    const n = db
      .prepare("SELECT COUNT(*) AS n FROM mgmt_audit WHERE source = 'cloud' AND outcome IN ('invalid', 'denied')")
      .get() as {
      n: number;
    };
    assert.equal(n.n, cases.length);
  } finally {
    db.close();
  }

  // An allowed gateway command after all that: answered, then the link is re-opened, and commands still flow.
  await pub(`${P}/gateway/commands`, JSON.stringify({ id: 'h-rc', command: 'uplink.reconnect' }));
  const rc = await waitFor(() => results().find((m) => m.doc['id'] === 'h-rc'), 10000, 'reconnect result');
  assert.equal(rc.doc['ok'], true);
  await gw.waitForLog((l) => l.msg === 'uplink reconnect requested by the cloud', 10000);
  await pub(`${P}/commands/pump`, JSON.stringify({ id: 'h-after', on: 1 }));
  const after = await waitFor(
    () => results().find((m) => m.doc['id'] === 'h-after'),
    10000,
    'a command after reconnect',
  );
  assert.equal(after.doc['status'], 'delivered');
});

test('gateway commands ota.check and restart from the cloud: answered first, then the restart (exit 75 for systemd)', async (t) => {
  const tmp = tempDir('egw-downlink-gw-');
  const cloud = await Cloud.create();
  const dataDir = join(tmp.dir, 'data');
  const cfgPath = tmp.file(
    'gw.yaml',
    `version: 1
gateway: { id: gw-dl, data_dir: ${JSON.stringify(dataDir)}, log_level: info, shutdown_timeout_ms: 5000 }
metrics: { enabled: false }
coap: { enabled: true, host: 127.0.0.1, port: 0 }
broker: { enabled: false }
uplink:
  url: ${JSON.stringify(cloud.url)}
  reconnect: { min_ms: 100, max_ms: 1000 }
  downlink: { enabled: true, allow: ['ota.check', 'restart'], state_interval_ms: 200 }
`,
  );
  const gw = GatewayProcess.start(cfgPath);
  const { client: app, msgs } = await cloudClient(cloud.url);
  t.after(async () => {
    await gw.stop('SIGKILL');
    app.end(true);
    await cloud.close();
    tmp.cleanup();
  });
  await gw.ready(20000);
  const state = await waitFor(() => msgs.find((m) => m.topic === `${P}/state`), 15000, 'reported state');
  assert.equal(
    (state.doc['ota'] as { phase?: string } | null)?.phase,
    'idle',
    'the OTA state is in the reported state',
  );
  const ask = (command: string, corr: string) =>
    app.publishAsync(`${P}/gateway/commands`, JSON.stringify({ command }), {
      qos: 1,
      properties: { responseTopic: `cloud/replies/${command}`, correlationData: Buffer.from(corr) },
    });
  await ask('ota.check', 'q-1');
  const check = await waitFor(() => msgs.find((m) => m.topic === 'cloud/replies/ota.check'), 15000, 'ota.check');
  assert.equal(check.doc['ok'], true, JSON.stringify(check.doc));
  assert.equal((check.doc['result'] as { applicable: boolean }).applicable, false);
  assert.equal(check.doc['id'], Buffer.from('q-1').toString('hex'));
  const exited = new Promise<number | null>((r) => gw.child.once('exit', (code) => r(code)));
  await ask('restart', 'q-2');
  const restart = await waitFor(() => msgs.find((m) => m.topic === 'cloud/replies/restart'), 15000, 'restart result');
  assert.deepEqual(restart.doc['result'], { state: 'restarting' });
  assert.equal(await exited, 75);
});
