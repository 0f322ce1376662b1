import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VisionService } from '../../src/vision/service.js';
import { partPng, rng } from '../../scripts/vision-synth.js';
import { harness, PtyPair, waitFor } from './drivers-support/harness.js';
import { captureLog, RecordingPublisher, visionConfig } from './vision-harness.js';

const PY = '/usr/bin/python3'; // Debian's python3 has python3-pymodbus

/**
 * The reject action "commands/{deviceId}" reaching a Modbus coil: the vision service publishes the
 * command through the publisher; here the test does what the composition root's routeCommands
 * does with `commands/+` (JSON-parse, DriverManager.handleCommand), against a real pymodbus slave on
 * a socat pty whose write log proves the coil write reached the device.
 */
test('a defective part sets the reject coil on a real Modbus RTU slave, via commands/{device}', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'egw-vision-mb-'));
  const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
  await pty.start();
  const writeLog = join(d, 'writes.jsonl');
  const slave = spawn(PY, ['test/fixtures/modbus/slave.py', pty.peer, writeLog], { stdio: 'ignore' });
  const h = harness(`  - type: modbus-rtu
    id: plc
    path: ${pty.dev}
    baud: 19200
    timeout_ms: 300
    slaves:
      - unit: 1
        device: reject-gate
        poll:
          - { name: reject, function: coil, address: 1, writable: true, interval_ms: 200 }
`);
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({
      reject: [{ kind: 'command', device_id: 'reject-gate', command: { set: { reject: true } } }],
    }),
    log: captureLog().log,
    publisher: pub,
  });
  t.after(async () => {
    await svc.stop();
    await h.close();
    slave.kill('SIGKILL');
    await pty.kill();
  });
  await h.manager.start();
  await waitFor(
    () => h.readings.some((r) => r.deviceId === 'reject-gate' && r.quality === 'good'),
    15000,
    'plc online',
  );
  await svc.start();
  svc.push({
    cameraId: 'belt',
    frameId: 'f1',
    partId: 'A-77',
    captureTs: Date.now(),
    image: await partPng('chip', rng(11)),
  });
  await pub.until(() => pub.commands().length >= 1, 15000, 'reject command');
  const cmd = pub.commands()[0]!;
  assert.equal(cmd.topic, 'commands/reject-gate');
  assert.equal(cmd.body.part_id, 'A-77');
  // What routeCommands (src/gateway.ts) does with a local commands/{id} message.
  const deviceId = cmd.topic.slice('commands/'.length);
  assert.ok(h.manager.ownsDevice(deviceId));
  const outcome = await h.manager.handleCommand(deviceId, JSON.parse(String(cmd.payload)));
  assert.equal(outcome?.ok, true);
  await waitFor(() => existsSync(writeLog) && readFileSync(writeLog, 'utf8').includes('"co"'), 5000, 'slave write log');
  const writes = readFileSync(writeLog, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { table: string; address: number; values: number[] });
  assert.deepEqual(
    writes.filter((w) => w.table === 'co').map(({ table, address, values }) => ({ table, address, values })),
    [{ table: 'co', address: 1, values: [1] }],
  );
});
