/**
 * The shared contract every driver type passes (as aedes-persistence's abstract suite): started
 * and stopped by the lifecycle, start never throws (a missing port is "offline, retrying"), emits
 * Readings with a quality, reports health to the device registry and metrics, stop is idempotent
 * and leaves no handle or timer behind.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { harness, metricValue, PtyPair, sleep, waitFor } from './drivers-support/harness.js';

interface Case {
  type: string;
  entry(path: string): string;
  /** Makes the device on the peer side produce data; returns a cleanup. */
  feed?(peer: string): Promise<() => Promise<void>>;
  serial: boolean;
}

const writer = (data: () => Buffer | string, everyMs: number) => async (peer: string) => {
  const p = new SerialPort({ path: peer, baudRate: 115200 });
  p.on('error', () => {});
  await new Promise((r) => p.once('open', r));
  const t = setInterval(() => p.write(data()), everyMs);
  return async () => {
    clearInterval(t);
    await new Promise<void>((r) => (p.isOpen ? p.close(() => r()) : r()));
  };
};

const CASES: Case[] = [
  { type: 'simulated', serial: false, entry: () => `  - { type: simulated, id: c-dev, interval_ms: 20, seed: 3 }\n` },
  {
    type: 'serial-lines',
    serial: true,
    entry: (p) => `  - { type: serial-lines, id: c-dev, path: ${p}, reconnect: { initial_ms: 50, max_ms: 200 } }\n`,
    feed: writer(() => '{"a":1}\n', 30),
  },
  {
    type: 'nmea',
    serial: true,
    entry: (p) =>
      `  - { type: nmea, id: c-dev, path: ${p}, epoch_timeout_ms: 50, reconnect: { initial_ms: 50, max_ms: 200 } }\n`,
    feed: writer(() => readFileSync('test/fixtures/nmea/gps-log.nmea'), 100),
  },
  {
    type: 'modbus-rtu',
    serial: true,
    entry: (p) => `  - type: modbus-rtu
    id: c-drv
    path: ${p}
    baud: 19200
    timeout_ms: 200
    reconnect: { initial_ms: 50, max_ms: 200 }
    slaves: [ { unit: 1, device: c-dev, poll: [ { name: t, address: 0, type: float32, interval_ms: 100 } ] } ]
`,
    feed: async (peer) => {
      const py = spawn('/usr/bin/python3', ['test/fixtures/modbus/slave.py', peer], { stdio: 'ignore' });
      return async () => {
        py.kill('SIGKILL');
      };
    },
  },
];

const handles = () => process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length;

for (const c of CASES) {
  describe(`driver contract: ${c.type}`, () => {
    if (c.serial) {
      test('start with a missing port resolves, reports offline and retries; stop releases everything', async () => {
        const d = mkdtempSync(join(tmpdir(), 'egw-contract-'));
        const before = handles();
        const h = harness(c.entry(join(d, 'no-such-port')));
        await h.manager.start();
        await waitFor(() => h.manager.status()[0]!.errors.open, 3000, 'open error counted');
        const st = h.manager.status()[0]!;
        assert.equal(st.state, 'running');
        assert.equal(st.connected, false);
        assert.ok(h.manager.health().ok, 'a missing sensor does not make the gateway unhealthy');
        await h.manager.stop();
        await h.manager.stop(); // idempotent
        await h.close();
        await sleep(50);
        assert.ok(handles() <= before, `no leaked handles (${handles()} > ${before})`);
      });
    }

    test('emits Readings with quality, reports health, stops cleanly', async () => {
      const d = mkdtempSync(join(tmpdir(), 'egw-contract-'));
      const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
      if (c.serial) await pty.start();
      const stopFeed = c.feed ? await c.feed(pty.peer) : async () => {};
      const h = harness(c.entry(pty.dev));
      try {
        await h.manager.start();
        await waitFor(() => h.readings.some((r) => r.deviceId === 'c-dev'), 15000, 'a reading');
        const r = h.readings.find((x) => x.deviceId === 'c-dev')!;
        assert.ok(['good', 'uncertain', 'bad'].includes(r.quality));
        assert.ok(Number.isFinite(r.ts));
        assert.ok(Object.keys(r.values).length > 0);
        assert.equal(h.devices.get('c-dev')!.online, true);
        const driverId = h.manager.status()[0]!.id;
        await waitFor(async () => true, 10);
        assert.ok((await metricValue(h.metrics, 'edge_gateway_driver_up', { driver: driverId })) === 1);
        await h.manager.stop();
        const n = h.readings.length;
        await sleep(150);
        assert.equal(h.readings.length, n, 'no readings after stop');
        assert.equal(h.manager.status()[0]!.state, 'stopped');
      } finally {
        await stopFeed();
        await h.close();
        await pty.kill();
      }
    });
  });
}
