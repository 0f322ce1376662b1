import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { GatewayProcess, isolatedConfig, tempDir } from '../helpers/gateway-process.js';
import { PtyPair, waitFor } from './drivers-support/harness.js';

const SLAVE = new URL('../../../test/fixtures/modbus/slave.py', import.meta.url).pathname;

test('a command published on commands/{id} writes a Modbus register of a driver-owned device', async (t) => {
  const tmp = tempDir('egw-cmd-');
  const pty = new PtyPair(join(tmp.dir, 'dev'), join(tmp.dir, 'peer'));
  await pty.start();
  const slave = spawn('/usr/bin/python3', [SLAVE, pty.peer], { stdio: 'ignore' });
  const cfg = isolatedConfig(join(tmp.dir, 'data')).replace(
    'broker:\n  enabled: false',
    'broker:\n  enabled: true\n  host: 127.0.0.1\n  port: 0',
  ).concat(`
drivers:
  - type: modbus-rtu
    id: plc
    path: ${pty.dev}
    baud: 19200
    timeout_ms: 300
    slaves:
      - unit: 1
        device: boiler
        poll:
          - { name: setpoint, address: 10, type: uint16, scale: 0.1, writable: true, max: 100, interval_ms: 200 }
`);
  const gw = GatewayProcess.start(tmp.file('gw.yaml', cfg));
  t.after(async () => {
    await gw.stop('SIGKILL');
    slave.kill('SIGKILL');
    await pty.kill();
    tmp.cleanup();
  });
  await gw.ready(20000);
  const port = Number((await gw.waitForLog((l) => l.msg === 'MQTT broker listening'))['port']);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: 'operator-console',
    reconnectPeriod: 0,
  });
  t.after(() => client.end(true));
  const results: { ok: boolean; error?: string }[] = [];
  client.on('message', (_topic, payload) =>
    results.push(JSON.parse(payload.toString()) as { ok: boolean; error?: string }),
  );
  await client.subscribeAsync('devices/boiler/command_result', { qos: 1 });

  await client.publishAsync('commands/boiler', JSON.stringify({ set: { setpoint: 42.5 } }), { qos: 1 });
  const ok = await waitFor(() => results[0], 15000, 'command result');
  assert.equal(ok.ok, true, JSON.stringify(ok));

  await client.publishAsync('commands/boiler', JSON.stringify({ set: { setpoint: 500 } }), { qos: 1 });
  const refused = await waitFor(() => results[1], 15000, 'second command result');
  assert.equal(refused.ok, false);
  assert.match(refused.error ?? '', /above max/);

  await client.publishAsync('commands/boiler', 'not json', { qos: 1 });
  const garbage = await waitFor(() => results[2], 15000, 'third command result');
  assert.equal(garbage.ok, false);
  assert.match(garbage.error ?? '', /not JSON/);

  // A command for a device no driver owns is left to the MQTT device itself: no result from the gateway.
  await client.publishAsync('commands/some-mqtt-device', JSON.stringify({ set: { x: 1 } }), { qos: 1 });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(results.length, 3);
});

test('commands/{id} while the Modbus slave is away: the result says failed, and the write never arrives when it returns', async (t) => {
  const tmp = tempDir('egw-cmd-');
  const pty = new PtyPair(join(tmp.dir, 'dev'), join(tmp.dir, 'peer'));
  await pty.start();
  const writeLog = join(tmp.dir, 'writes.jsonl');
  let slave = spawn('/usr/bin/python3', [SLAVE, pty.peer, writeLog], { stdio: 'ignore' });
  const cfg = isolatedConfig(join(tmp.dir, 'data')).replace(
    'broker:\n  enabled: false',
    'broker:\n  enabled: true\n  host: 127.0.0.1\n  port: 0',
  ).concat(`
drivers:
  - type: modbus-rtu
    id: plc
    path: ${pty.dev}
    baud: 19200
    timeout_ms: 300
    slaves:
      - unit: 1
        device: boiler
        poll:
          - { name: setpoint, address: 10, type: uint16, scale: 0.1, writable: true, max: 100, interval_ms: 200 }
`);
  const gw = GatewayProcess.start(tmp.file('gw.yaml', cfg));
  t.after(async () => {
    await gw.stop('SIGKILL');
    slave.kill('SIGKILL');
    await pty.kill();
    tmp.cleanup();
  });
  await gw.ready(20000);
  const port = Number((await gw.waitForLog((l) => l.msg === 'MQTT broker listening'))['port']);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'operator-2', reconnectPeriod: 0 });
  t.after(() => client.end(true));
  const results: { ok: boolean; error?: string }[] = [];
  client.on('message', (_topic, payload) =>
    results.push(JSON.parse(payload.toString()) as { ok: boolean; error?: string }),
  );
  await client.subscribeAsync('devices/boiler/command_result', { qos: 1 });
  await gw.waitForLog((l) => l.msg === 'device boiler online', 15000);

  const exited = new Promise((r) => slave.once('exit', r));
  slave.kill('SIGKILL'); // the slave loses power
  await exited;
  await gw.waitForLog((l) => l.msg === 'device boiler offline', 15000);
  await client.publishAsync('commands/boiler', JSON.stringify({ set: { setpoint: 66.6 } }), { qos: 1 });
  const failed = await waitFor(() => results[0], 15000, 'command result');
  assert.equal(failed.ok, false);
  assert.match(failed.error ?? '', /^setpoint: no valid answer/);

  slave = spawn('/usr/bin/python3', [SLAVE, pty.peer, writeLog], { stdio: 'ignore' });
  const onlines = () => gw.logs.filter((l) => l.msg === 'device boiler online').length;
  await waitFor(() => onlines() >= 2, 15000, 'boiler online again');
  await new Promise((r) => setTimeout(r, 1000));
  const log = existsSync(writeLog) ? readFileSync(writeLog, 'utf8') : '';
  assert.doesNotMatch(log, /"values": \[666\]/, 'the failed write never reached the slave');
});
