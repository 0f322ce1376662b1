import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { harness, PtyPair, sleep, waitFor } from './drivers-support/harness.js';

const PY = '/usr/bin/python3'; // Debian's python3 has python3-pymodbus

const yaml = (dev: string) => `  - type: modbus-rtu
    id: plc
    path: ${dev}
    baud: 19200
    timeout_ms: 200
    retries: 1
    offline_after: 2
    reconnect: { initial_ms: 50, max_ms: 400 }
    slaves:
      - unit: 1
        device: boiler
        poll:
          - { name: t_big, address: 0, type: float32, word_order: big, unit: "°C", interval_ms: 100 }
          - { name: t_little, address: 2, type: float32, word_order: little, interval_ms: 100 }
          - { name: delta, address: 4, type: int16, scale: 0.5, interval_ms: 100 }
          - { name: count, address: 6, type: uint32, interval_ms: 100 }
          - { name: setpoint, address: 10, type: uint16, scale: 0.1, writable: true, max: 100, interval_ms: 100 }
          - { name: level, function: input, address: 0, count: 2, interval_ms: 100 }
          - { name: pump, function: coil, address: 0, writable: true, interval_ms: 100 }
      - unit: 9
        device: ghost
        poll:
          - { name: x, address: 0, interval_ms: 100 }
`;

test('modbus-rtu against a real pymodbus slave: float32 word orders, scaling, command write, silent slave', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'egw-mb-'));
  const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
  await pty.start();
  const slave = spawn(PY, ['test/fixtures/modbus/slave.py', pty.peer], { stdio: 'ignore' });
  const h = harness(yaml(pty.dev));
  t.after(async () => {
    await h.close();
    slave.kill('SIGKILL');
    await pty.kill();
  });
  await h.manager.start();
  const boiler = () => h.readings.filter((r) => r.deviceId === 'boiler');
  await waitFor(() => boiler().some((r) => r.quality === 'good'), 15000, 'boiler reading');
  const r = boiler().find((x) => x.quality === 'good')!;
  assert.equal(Math.round((r.values['t_big'] as number) * 100) / 100, 12.56);
  assert.equal(Math.round((r.values['t_little'] as number) * 100) / 100, 12.56);
  assert.equal(r.values['delta'], -1);
  assert.equal(r.values['count'], 70000);
  assert.equal(r.values['level.0'], 7);
  assert.equal(r.values['pump'], true);
  assert.equal(r.units?.['t_big'], '°C');

  // Commands are validated against the declared map before anything goes on the wire.
  assert.match((await h.manager.handleCommand('boiler', { set: { t_big: 1 } }))!.error!, /not writable/);
  assert.match((await h.manager.handleCommand('boiler', { set: { setpoint: 500 } }))!.error!, /above max/);
  assert.match((await h.manager.handleCommand('boiler', { set: { pump: 3 } }))!.error!, /true or false/);
  assert.equal(await h.manager.handleCommand('nobody', { set: {} }), null);
  const ok = await h.manager.handleCommand('boiler', { set: { setpoint: 42.5, pump: false } });
  assert.deepEqual(ok, { ok: true, detail: { written: ['setpoint', 'pump'] } });
  await waitFor(
    () => boiler().some((x) => x.values['setpoint'] === 42.5 && x.values['pump'] === false),
    5000,
    'written values read back',
  );

  // The silent slave (unit 9) times out, is counted and goes offline; the boiler keeps reporting.
  await waitFor(() => h.devices.get('ghost')?.online === false, 8000, 'ghost offline');
  const st = h.manager.status()[0]!;
  assert.ok((st.errors.timeout ?? 0) >= 2);
  assert.equal(h.devices.get('boiler')!.online, true);
});

test('modbus-rtu: CRC errors and garbage from a broken slave are counted; the driver keeps polling and reconnects', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'egw-mb-'));
  const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
  await pty.start();
  const h = harness(yaml(pty.dev).replace(/      - unit: 9[\s\S]*$/, ''));
  // A "slave" that answers every request with a frame whose CRC is wrong, or with noise.
  const peer = new SerialPort({ path: pty.peer, baudRate: 19200 });
  peer.on('error', () => {});
  let n = 0;
  peer.on('data', () => {
    n++;
    const frame =
      n % 2 ? Buffer.from([0x01, 0x03, 0x04, 0x41, 0x48, 0xf5, 0xc3, 0xde, 0xad]) : Buffer.from([0xff, 0x00, 0x12]);
    peer.write(frame);
  });
  t.after(async () => {
    await h.close();
    await new Promise<void>((r) => (peer.isOpen ? peer.close(() => r()) : r()));
    await pty.kill();
  });
  await h.manager.start();
  await waitFor(() => (h.manager.status()[0]!.errors.crc ?? 0) >= 2, 8000, 'CRC errors counted');
  await waitFor(() => h.devices.get('boiler')?.online === false, 8000, 'boiler offline');
  assert.equal(h.readings.length, 0);
  // Unplug the bus: the driver reports the link offline and retries.
  await pty.kill();
  await waitFor(() => !h.manager.status()[0]!.connected, 3000, 'link offline');
  await sleep(200);
  assert.equal(h.manager.status()[0]!.state, 'running');
});
