/**
 * A Modbus slave that goes away and comes back, against a real pymodbus slave on a socat pty
 * pair. Killing the slave process is a slave losing power: socat keeps the bus, bytes sent while
 * nobody listens are lost (not delivered to the next process), exactly like RS-485.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coapClient, READ, startGateway } from './coap-harness.js';
import { harness, PtyPair, sleep, waitFor } from './drivers-support/harness.js';

const PY = '/usr/bin/python3'; // Debian's python3 has python3-pymodbus
const SLAVE = 'test/fixtures/modbus/slave.py';

/** An 8-entry map (the size in the issue); `setpoint` (HR10, initially 0) and `pump` (coil 0) are writable. */
const yaml = (dev: string, keys: string, intervalMs?: number) =>
  `  - type: modbus-rtu
    id: plc
    path: ${dev}
    baud: 19200
${keys}
    reconnect: { initial_ms: 50, max_ms: 400 }
    slaves:
      - unit: 1
        device: boiler
        poll:
          - { name: t_big, address: 0, type: float32 }
          - { name: t_little, address: 2, type: float32, word_order: little }
          - { name: delta, address: 4, type: int16, scale: 0.5 }
          - { name: count, address: 6, type: uint32 }
          - { name: setpoint, address: 10, type: uint16, scale: 0.1, writable: true, max: 100 }
          - { name: spare, address: 12, type: uint16 }
          - { name: level, function: input, address: 0, count: 2 }
          - { name: pump, function: coil, address: 0, writable: true }
`.replace(/^( {10}- \{.*) \}$/gm, intervalMs ? `$1, interval_ms: ${intervalMs} }` : '$1 }');

interface Write {
  pid: number;
  table: 'hr' | 'co';
  address: number;
  values: number[];
}

class Slave {
  proc: ChildProcess | undefined;
  constructor(
    readonly peer: string,
    readonly log: string,
  ) {}
  start(): void {
    this.proc = spawn(PY, [SLAVE, this.peer, this.log], { stdio: 'ignore' });
  }
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL'); // power loss: no goodbye
    await exited;
  }
  /** Every write a slave process executed (its datastore's setValues), in order. */
  writes(): Write[] {
    if (!existsSync(this.log)) return [];
    return readFileSync(this.log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Write);
  }
}

async function setup(
  t: { after(fn: () => Promise<void>): void },
  keys: string,
  o: { commandTimeoutMs?: number; intervalMs?: number } = {},
) {
  const d = mkdtempSync(join(tmpdir(), 'egw-mbo-'));
  const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
  await pty.start();
  const slave = new Slave(pty.peer, join(d, 'writes.jsonl'));
  // Cleanup registered before anything can throw; after-hooks run in order: harness first.
  const held: { h?: ReturnType<typeof harness> } = {};
  t.after(async () => {
    await held.h?.close();
    await slave.stop();
    await pty.kill();
  });
  slave.start();
  const h = (held.h = harness(yaml(pty.dev, keys, o.intervalMs), undefined, o.commandTimeoutMs ? o : {}));
  await h.manager.start();
  return { h, slave };
}

const boilerDetail = (h: ReturnType<typeof harness>) =>
  (h.manager.status()[0]!.detail?.devices?.['boiler'] ?? {}) as {
    online?: boolean;
    failures?: number;
    polls?: number;
    lastError?: string | null;
    offlineWithinMs?: number;
  };

test('modbus-rtu: a write reported failed while the slave is away never reaches it when it returns', async (t) => {
  // Every entry polled every 100 ms: the bus is always busy with polls when the command comes.
  const keys = '    timeout_ms: 300\n    retries: 1\n    offline_after: 2';
  const { h, slave } = await setup(t, keys, { commandTimeoutMs: 2000, intervalMs: 100 });
  const boiler = () => h.readings.filter((r) => r.deviceId === 'boiler');
  await waitFor(() => boiler().some((r) => r.quality === 'good'), 15000, 'boiler reading');

  // Positive control: with the slave there, a write reaches its datastore.
  assert.equal((await h.manager.handleCommand('boiler', { set: { setpoint: 12.3 } }))?.ok, true);
  await waitFor(() => slave.writes().some((w) => w.table === 'hr' && w.values[0] === 123), 3000, 'control write');

  await slave.stop();
  const t0 = performance.now();
  const r = await h.manager.handleCommand('boiler', { set: { setpoint: 77.7, pump: true } });
  const took = performance.now() - t0;
  assert.ok(r && !r.ok, JSON.stringify(r));

  // The slave comes back (a new process on the same bus) and is polled again.
  const before = h.readings.length;
  slave.start();
  await waitFor(
    () => h.readings.slice(before).some((x) => x.deviceId === 'boiler' && x.quality === 'good'),
    15000,
    'boiler answers again',
  );
  await sleep(1500); // time for anything still queued to reach the bus
  const late = slave.writes().filter((w) => (w.table === 'hr' && w.values[0] === 777) || w.table === 'co');
  assert.deepEqual(late, [], 'the failed write (and the one after it) never reached any slave process');
  // The restarted slave's register still holds its power-on value (0), as the driver reads it back.
  const last = h.readings.filter((x) => x.deviceId === 'boiler' && x.quality === 'good').at(-1)!;
  assert.equal(last.values['setpoint'], 0);
  assert.equal(last.values['pump'], true, 'coil 0 power-on value, not written');
  // Reported by the driver itself, before the 2000 ms bound: the write went out, no answer came;
  // the second write of the command was not sent.
  assert.match(r.error!, /^setpoint: /);
  assert.ok(took < 2000, `answered in ${took} ms`);
  assert.deepEqual(r.detail, { written: [], failed: 'setpoint', not_sent: ['pump'] });
});

test('modbus-rtu: a command whose answer cannot come before its deadline is not sent at all', async (t) => {
  const keys = '    timeout_ms: 300\n    retries: 1\n    offline_after: 2';
  const { h, slave } = await setup(t, keys, { commandTimeoutMs: 350, intervalMs: 100 });
  await waitFor(() => h.readings.some((r) => r.deviceId === 'boiler' && r.quality === 'good'), 15000, 'reading');
  const r = await h.manager.handleCommand('boiler', { set: { setpoint: 55.5 } });
  assert.ok(r && !r.ok);
  assert.match(r.error!, /not sent|timed out/);
  await sleep(800);
  assert.deepEqual(
    slave.writes().filter((w) => w.values[0] === 555),
    [],
    'nothing reached the slave',
  );
});

test('modbus-rtu: an 8-entry slave that stops answering is offline within the configured bound (defaults)', async (t) => {
  // Defaults: timeout_ms 500, retries 1, offline_after 3, interval_ms 1000 →
  // bound 3 × max(1000, 2 × 500) + 2 × 500 = 4000 ms (docs/drivers.md).
  const { h, slave } = await setup(t, '    # timeout_ms, retries, offline_after: defaults');
  await waitFor(() => h.devices.get('boiler')?.online === true, 15000, 'boiler online');
  const bound = 4000;
  await slave.stop();
  const t0 = performance.now();
  // A 2 ms loop, not waitFor's 20 ms, so the figure is the driver's and not the test's.
  while (h.devices.get('boiler')?.online !== false && performance.now() - t0 < bound + 3000) await sleep(2);
  const took = Math.round(performance.now() - t0);
  console.log(`# modbus offline detection, 8-entry map, defaults: ${took} ms (bound ${bound} ms)`);
  // The bound is exact up to timer lateness (Node timers fire late, never early) and this
  // loop's polling; the worst case needs the slave to die right after a poll started.
  assert.ok(took <= bound + 100, `offline after ${took} ms, bound ${bound} ms`);
  const det = boilerDetail(h);
  assert.equal(det.offlineWithinMs, bound);
  assert.equal(det.online, false);
  assert.ok(det.failures! >= 3);
  assert.match(det.lastError ?? '', /timed out/i);
  assert.match(h.devices.get('boiler')!.reason ?? '', /no answer/);
  // A 10 s outage is reported, and the slave is back online when it returns.
  slave.start();
  await waitFor(() => h.devices.get('boiler')?.online === true, 10000, 'boiler online again');
  assert.equal(boilerDetail(h).failures, 0);
});

test('modbus-rtu: /mgmt/devices serves the per-slave detail (libcoap coap-client against a real gateway)', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'egw-mbm-'));
  const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
  await pty.start();
  const slave = new Slave(pty.peer, join(d, 'writes.jsonl'));
  const held: { gw?: Awaited<ReturnType<typeof startGateway>> } = {};
  t.after(async () => {
    await held.gw?.close();
    await slave.stop();
    await pty.kill();
  });
  slave.start();
  const gw = (held.gw = await startGateway(
    `drivers:\n${yaml(pty.dev, '    timeout_ms: 200\n    retries: 0\n    offline_after: 2', 200)}` +
      '      - { unit: 9, device: ghost, poll: [ { name: x, address: 0, interval_ms: 200 } ] }\n',
  ));
  const url = gw.url.bind(gw);
  const get = async (path: string) => {
    const r = await coapClient(['-m', 'get', url(`${path}?token=${READ}`)]);
    assert.ok(r.code === 0 && r.stdout, `${path}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  type Dev = { id: string; online: boolean; driver?: Record<string, unknown> };
  const end = performance.now() + 10000;
  for (;;) {
    const list = (await get('/mgmt/devices')).devices as Dev[];
    const ghostFailing = list.some((x) => x.id === 'ghost' && Number(x.driver?.['failures']) >= 1);
    if (ghostFailing && list.some((x) => x.id === 'boiler' && x.online)) break;
    assert.ok(performance.now() < end, `ghost detail in /mgmt/devices: ${JSON.stringify(list)}`);
    await sleep(200);
  }
  const one = (await get('/mgmt/devices/ghost')) as Dev;
  assert.equal(one.driver?.['unit'], 9);
  assert.equal(one.driver?.['offlineWithinMs'], 2 * 200 + 200);
  assert.match(String(one.driver?.['lastError']), /timed out/i);
  assert.ok(Number(one.driver?.['polls']) >= 1);
  const boiler = (await get('/mgmt/devices/boiler')) as Dev;
  assert.equal(boiler.driver?.['failures'], 0);
  assert.equal(boiler.driver?.['lastError'], null);
});

/** CRC-16/MODBUS (Modbus over Serial Line v1.02 §6.2.2), low byte first on the wire. */
function crc16(b: Buffer): number {
  let crc = 0xffff;
  for (const x of b) {
    crc ^= x;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

test('modbus-rtu: a live slave that never answers one register stays online; the other entries are read', async (t) => {
  const { SerialPort } = await import('serialport');
  const d = mkdtempSync(join(tmpdir(), 'egw-mbs-'));
  const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
  await pty.start();
  const h = harness(`  - type: modbus-rtu
    id: plc
    path: ${pty.dev}
    baud: 19200
    timeout_ms: 500
    retries: 1
    offline_after: 1
    slaves:
      - unit: 1
        device: quirky
        poll:
          - { name: a, address: 0, interval_ms: 200 }
          - { name: hole, address: 12, interval_ms: 200 }
          - { name: b, address: 20, interval_ms: 200 }
`);
  // A minimal FC3 responder that stays silent for register 12 (some devices do, instead of an
  // exception): answers every other read with the address as the value.
  const peer = new SerialPort({ path: pty.peer, baudRate: 19200 });
  peer.on('error', () => {});
  let buf = Buffer.alloc(0);
  peer.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 8) {
      const req = buf.subarray(0, 8);
      buf = buf.subarray(8);
      if (req[1] !== 3 || crc16(req.subarray(0, 6)) !== req.readUInt16LE(6)) continue;
      const addr = req.readUInt16BE(2);
      if (addr === 12) continue;
      const body = Buffer.from([1, 3, 2, addr >> 8, addr & 0xff]);
      const out = Buffer.alloc(7);
      body.copy(out);
      out.writeUInt16LE(crc16(body), 5);
      peer.write(out);
    }
  });
  t.after(async () => {
    await h.close();
    await new Promise<void>((r) => (peer.isOpen ? peer.close(() => r()) : r()));
    await pty.kill();
  });
  await h.manager.start();
  await waitFor(() => h.readings.filter((r) => r.deviceId === 'quirky').length >= 6, 30000, 'six readings');
  const rs = h.readings.filter((r) => r.deviceId === 'quirky');
  // timeout_ms is generous so the registers that do answer are never late on a loaded machine.
  assert.ok(
    rs.every((r) => r.quality === 'uncertain' && r.values['hole'] === undefined),
    JSON.stringify(rs.map((r) => [r.quality, r.values])),
  );
  assert.ok(
    rs.slice(1).every((r) => r.values['a'] === 0 && r.values['b'] === 20),
    JSON.stringify(rs.slice(0, 3)),
  );
  assert.equal(h.devices.get('quirky')!.online, true, 'never reported offline');
  assert.ok((h.manager.status()[0]!.errors.timeout ?? 0) >= 2);
});
