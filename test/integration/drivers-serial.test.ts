import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { harness, metricValue, PtyPair, sleep, waitFor, type Harness } from './drivers-support/harness.js';

async function openPeer(path: string): Promise<SerialPort> {
  const p = new SerialPort({ path, baudRate: 115200, autoOpen: false });
  await new Promise<void>((res, rej) => p.open((e) => (e ? rej(e) : res())));
  p.on('error', () => {});
  return p;
}
const closePeer = (p: SerialPort) => new Promise<void>((r) => (p.isOpen ? p.close(() => r()) : r()));

async function setup(t: { after(fn: () => Promise<void>): void }, yamlFor: (dev: string) => string) {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const d = mkdtempSync(join(tmpdir(), 'egw-pty-'));
  const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
  await pty.start();
  const h: Harness = harness(yamlFor(pty.dev));
  const peer = await openPeer(pty.peer);
  t.after(async () => {
    await closePeer(peer).catch(() => {});
    await h.close();
    await pty.kill();
  });
  return { h, pty, peer, d };
}

test('serial-lines JSON: lines on a real pty arrive as Readings; garbage and overlong lines are counted', async (t) => {
  const { h, peer } = await setup(
    t,
    (dev) => `  - type: serial-lines
    id: wx-1
    path: ${dev}
    baud: 115200
    format: json
    max_line_length: 64
`,
  );
  await h.manager.start();
  await waitFor(() => h.manager.status()[0]!.connected, 5000, 'port open');
  peer.write('{"temperature":21.5,"humidity":40}\n');
  peer.write(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0a])); // random bytes + newline
  peer.write('x'.repeat(500) + '\n'); // overlong
  peer.write('{"temperature":22,"quality":"uncertain"}\r\n');
  await waitFor(() => h.readings.length >= 2, 5000, 'two readings');
  assert.equal(h.readings[0]!.deviceId, 'wx-1');
  assert.deepEqual(h.readings[0]!.values, { temperature: 21.5, humidity: 40 });
  assert.equal(h.readings[0]!.source, 'serial');
  assert.equal(h.readings[1]!.quality, 'uncertain');
  await waitFor(() => (h.manager.status()[0]!.errors.overlong ?? 0) >= 1, 3000, 'overlong counted');
  const st = h.manager.status()[0]!;
  assert.equal(st.errors.bad_line, 1);
  assert.equal(
    await metricValue(h.metrics, 'edge_gateway_driver_errors_total', { driver: 'wx-1', kind: 'bad_line' }),
    1,
  );
  assert.equal(await metricValue(h.metrics, 'edge_gateway_driver_up', { driver: 'wx-1' }), 1);
  assert.equal(h.devices.get('wx-1')!.online, true);
  assert.ok(h.devices.get('wx-1')!.errors >= 2);
});

test('serial-lines CSV: column map → names, units, scale/offset', async (t) => {
  const { h, peer } = await setup(
    t,
    (dev) => `  - type: serial-lines
    id: csv-1
    path: ${dev}
    baud: 115200
    format: csv
    skip_lines_matching: "^#"
    columns:
      - { name: temperature, unit: "°C", scale: 0.1, offset: -40 }
      - { name: null }
      - { name: pressure, unit: hPa }
`,
  );
  await h.manager.start();
  await waitFor(() => h.manager.status()[0]!.connected, 5000, 'port open');
  peer.write('# header t,x,p\n615,abc,1013.25\n1,2\n');
  await waitFor(() => h.readings.length >= 1, 5000, 'csv reading');
  await sleep(100);
  assert.equal(h.readings.length, 1);
  assert.deepEqual(h.readings[0]!.values, { temperature: 21.5, pressure: 1013.25 });
  assert.deepEqual(h.readings[0]!.units, { temperature: '°C', pressure: 'hPa' });
  assert.equal(h.manager.status()[0]!.errors.bad_line, 1, 'wrong column count counted; header skipped');
});

test('nmea: the recorded log over a pty gives the right fixes; wrong checksums counted', async (t) => {
  const { h, peer } = await setup(
    t,
    (dev) => `  - type: nmea
    id: gps-1
    path: ${dev}
    baud: 115200
    epoch_timeout_ms: 100
`,
  );
  await h.manager.start();
  await waitFor(() => h.manager.status()[0]!.connected, 5000, 'port open');
  peer.write(readFileSync('test/fixtures/nmea/gps-log.nmea'));
  await waitFor(() => h.readings.length >= 3, 5000, 'three fixes');
  const [a, b, c] = h.readings;
  assert.ok(Math.abs((a!.values['latitude'] as number) - 48.1173) < 1e-4);
  assert.equal(a!.values['altitude'], 545.4);
  assert.equal(a!.values['course'], 84.4);
  assert.equal(b!.values['satellites'], 10);
  assert.equal(c!.quality, 'bad');
  assert.equal(h.manager.status()[0]!.errors.checksum, 1);
});

test('hot unplug: socat killed → offline within the timeout; new socat on the same path → readings resume; no restart', async (t) => {
  const { h, pty, d } = await setup(
    t,
    (dev) => `  - type: serial-lines
    id: hot-1
    path: ${dev}
    baud: 115200
    reconnect: { initial_ms: 50, max_ms: 400 }
  - type: simulated
    id: sim-side
    interval_ms: 20
    seed: 1
`,
  );
  void d;
  await h.manager.start();
  await waitFor(() => h.manager.status()[0]!.connected, 5000, 'port open');
  await pty.kill();
  const t0 = Date.now();
  // Detected from the port's close/EIO event, not a poll: normally tens of ms; 5 s leaves room for a
  // loaded machine.
  await waitFor(() => !h.manager.status()[0]!.connected, 5000, 'offline after unplug');
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(h.devices.get('hot-1')!.online, false);
  const simBefore = h.readings.filter((r) => r.deviceId === 'sim-side').length;
  await sleep(600); // several failed reopen attempts (ENOENT) with backoff
  assert.ok(h.readings.filter((r) => r.deviceId === 'sim-side').length > simBefore + 5, 'other drivers unaffected');
  await pty.start(); // plug back: same link path
  await waitFor(() => h.manager.status()[0]!.connected, 5000, 'reconnected');
  const peer2 = await openPeer(pty.peer);
  t.after(() => closePeer(peer2));
  peer2.write('{"v":1}\n');
  await waitFor(() => h.readings.some((r) => r.deviceId === 'hot-1' && r.values['v'] === 1), 5000, 'readings resume');
  assert.ok((await metricValue(h.metrics, 'edge_gateway_driver_reconnects_total', { driver: 'hot-1' })) >= 1);
  assert.equal(h.devices.get('hot-1')!.online, true);
});

test('nmea: proprietary sentences are not bad lines, $PGRMC is not a fix; bytes_in counts every byte', async (t) => {
  const { h, peer } = await setup(
    t,
    (dev) => `  - type: nmea
    id: gps-p
    path: ${dev}
    baud: 115200
    epoch_timeout_ms: 100
`,
  );
  await h.manager.start();
  await waitFor(() => h.manager.status()[0]!.connected, 5000, 'port open');
  const sum = (body: string) => {
    let x = 0;
    for (const ch of body) x ^= ch.charCodeAt(0);
    return `$${body}*${x.toString(16).toUpperCase().padStart(2, '0')}\r\n`;
  };
  // What a healthy MTK / ST / Garmin receiver interleaves with its fixes, plus one real GGA.
  const stream =
    sum('PMTK010,002') +
    sum('PSTMVER,GNSSLIB_8.4.18.25_ARM') +
    sum('PERDAPI,PPS,TIMEONLY,0') +
    sum('PGRMC,101010,A,0100.000,S,00200.000,W,001.0,090.0,010190,003.1,W') +
    sum('GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,') +
    '#garbage#\r\n';
  peer.write(stream);
  await waitFor(() => h.readings.length >= 1, 5000, 'the GGA fix');
  await sleep(300);
  assert.equal(h.readings.length, 1, 'the PGRMC made no fix of its own');
  assert.ok((h.readings[0]!.values['latitude'] as number) > 48, 'PGRMC (S/W) was not merged as RMC');
  assert.equal(h.readings[0]!.values['speed'], undefined);
  const st = h.manager.status()[0]!;
  assert.equal(st.errors.bad_line, 1, 'only the garbage line is a bad line');
  await waitFor(() => h.devices.get('gps-p')?.bytesIn === Buffer.byteLength(stream), 3000, 'bytes_in of every byte');
});

test('nmea: a receiver that never sends a valid sentence goes offline after stale_after_ms; back on a valid one', async (t) => {
  const { h, peer } = await setup(
    t,
    (dev) => `  - type: nmea
    id: gps-g
    path: ${dev}
    baud: 115200
    stale_after_ms: 400
`,
  );
  await h.manager.start();
  await waitFor(() => h.manager.status()[0]!.connected, 5000, 'port open');
  const t0 = Date.now();
  let sent = 0;
  // Noise a receiver at the wrong baud rate produces: never a valid sentence.
  const noise = setInterval(() => {
    const b = Buffer.from('\xfe\x00$GPGGA,1*ZZ\r\n\x80\x81garbage\r\n', 'latin1');
    sent += b.length;
    peer.write(b);
  }, 50);
  t.after(() => clearInterval(noise));
  await waitFor(() => !h.manager.status()[0]!.connected, 3000, 'offline on garbage');
  const took = Date.now() - t0;
  assert.ok(took >= 350 && took < 1500, `offline after ${took} ms`);
  assert.match(h.manager.status()[0]!.reason ?? '', /no valid sentence for 400 ms/);
  assert.equal(h.devices.get('gps-g')!.online, false);
  clearInterval(noise);
  await sleep(100);
  await waitFor(() => h.devices.get('gps-g')?.bytesIn === sent, 3000, 'garbage bytes counted in bytes_in');
  assert.ok(sent > 0);
  peer.write('$GPGSV,1,1,04,01,40,083,46,02,17,308,41,12,07,344,39,14,22,228,45*7A\r\n');
  await waitFor(() => h.manager.status()[0]!.connected, 3000, 'online again on a valid sentence');
});

test('serial-lines: a device that only sends garbage goes offline after stale_after_ms; bytes_in counts every byte', async (t) => {
  const { h, peer } = await setup(
    t,
    (dev) => `  - type: serial-lines
    id: wx-g
    path: ${dev}
    baud: 115200
    stale_after_ms: 400
`,
  );
  await h.manager.start();
  await waitFor(() => h.manager.status()[0]!.connected, 5000, 'port open');
  let sent = 0;
  const noise = setInterval(() => {
    const b = Buffer.from('not json at all\n{"t":\n');
    sent += b.length;
    peer.write(b);
  }, 50);
  t.after(() => clearInterval(noise));
  await waitFor(() => !h.manager.status()[0]!.connected, 3000, 'offline on garbage');
  clearInterval(noise);
  await sleep(100);
  await waitFor(() => h.devices.get('wx-g')?.bytesIn === sent, 3000, 'garbage bytes counted in bytes_in');
  const line = '{"temperature":21.5}\n';
  peer.write(line);
  await waitFor(() => h.manager.status()[0]!.connected, 3000, 'online again on a valid line');
  await waitFor(() => h.devices.get('wx-g')?.bytesIn === sent + line.length, 3000, 'valid line bytes counted once');
});
