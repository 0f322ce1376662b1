import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LineFramer } from '../../../src/drivers/lines/framer.js';
import { parseCsvLine, parseJsonLine } from '../../../src/drivers/lines/parse.js';
import { NmeaAssembler, nmeaChecksum, parseNmea, type Fix } from '../../../src/drivers/nmea/parse.js';
import { decodeRegisters, encodeValue } from '../../../src/drivers/modbus/decode.js';
import { backoffDelay } from '../../../src/drivers/backoff.js';
import { mulberry32, sampleSignals } from '../../../src/drivers/simulated/signal.js';

test('framer splits on the delimiter across chunks and strips CR', () => {
  const f = new LineFramer('\n', 16);
  assert.deepEqual(f.push(Buffer.from('ab')).lines, []);
  const r = f.push(Buffer.from('c\r\nde\nf'));
  assert.deepEqual(r.lines.map(String), ['abc', 'de']);
  assert.equal(f.pending, 1);
});

test('framer discards an overlong line up to the next delimiter and counts it once', () => {
  const f = new LineFramer('\n', 8);
  const a = f.push(Buffer.from('x'.repeat(20)));
  assert.equal(a.overlong, 1);
  assert.ok(f.pending < 8, 'does not buffer without bound');
  const b = f.push(Buffer.from('yyyy\nok\n'));
  assert.equal(b.overlong, 0);
  assert.deepEqual(b.lines.map(String), ['ok']);
  const c = f.push(Buffer.from('0123456789\nz\n'));
  assert.equal(c.overlong, 1);
  assert.deepEqual(c.lines.map(String), ['z']);
});

test('framer handles a multi-byte delimiter split across chunks', () => {
  const f = new LineFramer('\r\n', 32);
  assert.deepEqual(f.push(Buffer.from('a\r')).lines, []);
  assert.deepEqual(f.push(Buffer.from('\nb\r\n')).lines.map(String), ['a', 'b']);
});

test('JSON line: numbers, booleans, null dropouts, ts and quality', () => {
  const r = parseJsonLine('{"t":21.5,"on":true,"h":null,"ts":1700000000000,"name":"x"}');
  assert.ok(r.ok);
  assert.deepEqual(r.values, { t: 21.5, on: true, h: null, name: 'x' });
  assert.equal(r.quality, 'uncertain');
  assert.equal(r.ts, 1700000000000);
  assert.equal(
    parseJsonLine('{"t":1,"quality":"bad"}').ok &&
      (parseJsonLine('{"t":1,"quality":"bad"}') as { quality: string }).quality,
    'bad',
  );
});

test('JSON line: refuses non-objects, garbage and value-less objects', () => {
  for (const l of [
    'garbage',
    '[1,2]',
    '42',
    '{"a":[1]}',
    '{"t":1,"ts":"not a date"}',
    '{"t":1,"ts":2e15}',
    '\u0000\u00ff{',
  ]) {
    assert.equal(parseJsonLine(l).ok, false, l);
  }
});

test('JSON line without a field map uses the shared normaliser: strings, nesting, left-out fields reported', () => {
  const r = parseJsonLine('{"status":"RUN","env":{"rh":40},"arr":[1],"deviceId":"x"}');
  assert.ok(r.ok);
  assert.deepEqual(r.values, { status: 'RUN', 'env.rh': 40 });
  assert.equal(r.ts, undefined);
  assert.match(r.left!, /arr: arrays are not values/);
});

test('JSON line with a field map renames, scales and gives units', () => {
  const r = parseJsonLine('{"T":215,"x":9}', [{ key: 'T', name: 'temperature', unit: '°C', scale: 0.1, offset: 0 }]);
  assert.ok(r.ok);
  assert.deepEqual(r.values, { temperature: 21.5 });
  assert.deepEqual(r.units, { temperature: '°C' });
});

test('CSV line maps columns by position with scale/offset, skips null columns', () => {
  const cols = [
    { name: 'temperature', unit: '°C', scale: 0.1, offset: -40 },
    { name: null, scale: 1, offset: 0 },
    { name: 'pressure', unit: 'hPa', scale: 1, offset: 0 },
  ];
  const r = parseCsvLine('615, ignored ,1013.2', cols);
  assert.ok(r.ok);
  assert.deepEqual(r.values, { temperature: 21.5, pressure: 1013.2 });
  assert.equal(r.quality, 'good');
  const m = parseCsvLine('615,,', cols);
  assert.ok(m.ok);
  assert.equal(m.values['pressure'], null);
  assert.equal(m.quality, 'uncertain');
  assert.equal(parseCsvLine('1,2', cols).ok, false);
  assert.equal(parseCsvLine('abc,1,2', cols).ok, false);
});

test('NMEA checksum is verified (textbook GGA/RMC examples)', () => {
  const gga = '$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47';
  const r = parseNmea(gga);
  assert.ok(r.ok && r.sentence.kind === 'GGA');
  assert.ok(Math.abs(r.sentence.lat! - 48.1173) < 1e-4);
  assert.ok(Math.abs(r.sentence.lon! - 11.516667) < 1e-5);
  assert.equal(r.sentence.alt, 545.4);
  assert.equal(r.sentence.satellites, 8);
  const bad = parseNmea(gga.replace('*47', '*48'));
  assert.deepEqual(bad.ok ? null : bad.reason, 'checksum');
  assert.equal(parseNmea('$GPGGA,no checksum').ok, false);
  const gsv = parseNmea('$GPGSV,1,1,04,01,40,083,46,02,17,308,41,12,07,344,39,14,22,228,45*7A');
  assert.equal(gsv.ok ? null : gsv.reason, 'unsupported');
});

/** Appends the checksum the way a receiver does (NMEA 0183 §5.2.1.3). */
const withSum = (body: string) => `$${body}*${nmeaChecksum(body).toString(16).toUpperCase().padStart(2, '0')}`;

test('NMEA proprietary sentences ($PMTK, $PSTM, $PERD, $PUBX) are valid and unused, not bad lines', () => {
  for (const body of [
    'PMTK001,314,3',
    'PMTK010,002',
    'PSTMVER,GNSSLIB_8.4.18.25_ARM',
    'PERDAPI,PPS,TIMEONLY,0',
    'PUBX,00,081350.00,4717.113210,N,00833.915187,E,546.589,G3,2.1,2.0,0.007,77.52,0.007,,0.92,1.19,0.77,9,0,0',
  ]) {
    const r = parseNmea(withSum(body));
    assert.deepEqual(r, { ok: false, reason: 'unsupported', detail: 'proprietary' }, body);
  }
  // The textbook MTK acknowledgement with its published checksum.
  assert.equal((parseNmea('$PMTK001,314,3*36') as { reason?: string }).reason, 'unsupported');
  // A proprietary sentence with a wrong checksum is still a checksum error.
  assert.equal((parseNmea('$PMTK001,314,3*37') as { reason?: string }).reason, 'checksum');
});

test('NMEA $PGRMC (Garmin) is proprietary, never read as RMC; address fields are checked', () => {
  // Same fields as an RMC would have: a parser going by the last three letters would accept it.
  const pgrmc = withSum('PGRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W');
  const r = parseNmea(pgrmc);
  assert.equal(r.ok, false);
  assert.equal((r as { reason: string }).reason, 'unsupported');
  assert.equal(parseNmea(withSum('PGRME,15.0,M,45.0,M,25.0,M')).ok, false);
  // A real RMC from the same receiver still parses.
  const rmc = parseNmea(withSum('GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W'));
  assert.ok(rmc.ok && rmc.sentence.kind === 'RMC');
  // Malformed address fields: lowercase, too short, too long, empty, non-ASCII, hostile lengths.
  for (const id of ['gprmc', 'RMC', 'GPRMCX', '', 'GP\u00c9MC', 'P', 'PMT', 'P' + 'X'.repeat(40), 'G,RMC']) {
    const x = parseNmea(withSum(`${id},1,2,3`));
    assert.equal(x.ok, false, id);
    assert.equal((x as { reason: string }).reason, 'format', id);
  }
});

test('recorded NMEA log gives the right fixes, merged per epoch', () => {
  const text = readFileSync('test/fixtures/nmea/gps-log.nmea', 'latin1');
  const asm = new NmeaAssembler();
  const fixes: Fix[] = [];
  let checksum = 0;
  for (const line of text.split('\r\n').filter(Boolean)) {
    const r = parseNmea(line);
    if (!r.ok) {
      if (r.reason === 'checksum') checksum++;
      continue;
    }
    fixes.push(...asm.push(r.sentence));
  }
  const last = asm.flush();
  if (last) fixes.push(last);
  assert.equal(checksum, 1);
  assert.equal(fixes.length, 3);
  const [a, b, c] = fixes as [Fix, Fix, Fix];
  assert.equal(a.quality, 'good');
  assert.ok(Math.abs((a.values['latitude'] as number) - 48.1173) < 1e-4);
  assert.equal(a.values['altitude'], 545.4);
  assert.equal(a.values['fix_quality'], 1);
  assert.equal(a.values['satellites'], 8);
  assert.equal(a.values['course'], 84.4);
  assert.ok(Math.abs((a.values['speed'] as number) - 22.4 * 0.514444) < 1e-3);
  assert.equal(a.values['gps_time'], Date.UTC(1994, 2, 23, 12, 35, 19));
  assert.equal(b.values['fix_quality'], 2);
  assert.equal(b.values['satellites'], 10);
  assert.ok(Math.abs((b.values['longitude'] as number) - (11 + 31.05 / 60)) < 1e-6);
  assert.equal(c.quality, 'bad', 'fix quality 0 is not a fix');
  assert.ok((c.values['latitude'] as number) < 0 && (c.values['longitude'] as number) < 0, 'S and W are negative');
});

test('Modbus registers decode int16/uint16/int32/uint32/float32 in every word and byte order', () => {
  assert.deepEqual(decodeRegisters([0xffff], 'int16', 1, 'big', 'big'), [-1]);
  assert.deepEqual(decodeRegisters([0xffff], 'uint16', 1, 'big', 'big'), [65535]);
  assert.deepEqual(
    decodeRegisters([0x4148, 0xf5c3], 'float32', 1, 'big', 'big').map((v) => Math.round(v * 100) / 100),
    [12.56],
  );
  assert.deepEqual(
    decodeRegisters([0xf5c3, 0x4148], 'float32', 1, 'little', 'big').map((v) => Math.round(v * 100) / 100),
    [12.56],
  );
  assert.deepEqual(
    decodeRegisters([0x4841, 0xc3f5], 'float32', 1, 'big', 'little').map((v) => Math.round(v * 100) / 100),
    [12.56],
  );
  assert.deepEqual(decodeRegisters([0x0001, 0x0000], 'uint32', 1, 'little', 'big'), [1]);
  assert.deepEqual(decodeRegisters([0xffff, 0xfffe], 'int32', 1, 'big', 'big'), [-2]);
  assert.deepEqual(decodeRegisters([1, 2, 3], 'uint16', 3, 'big', 'big'), [1, 2, 3]);
  for (const [w, b] of [
    ['big', 'big'],
    ['little', 'big'],
    ['big', 'little'],
    ['little', 'little'],
  ] as const) {
    assert.equal(
      Math.round(decodeRegisters(encodeValue(-3.25, 'float32', w, b), 'float32', 1, w, b)[0]! * 100) / 100,
      -3.25,
    );
    assert.equal(decodeRegisters(encodeValue(-70000, 'int32', w, b), 'int32', 1, w, b)[0], -70000);
  }
  assert.throws(() => encodeValue(70000, 'uint16', 'big', 'big'), RangeError);
  assert.throws(() => decodeRegisters([1], 'float32', 1, 'big', 'big'), RangeError);
});

test('backoff doubles up to the cap', () => {
  const mid = () => 0.5;
  assert.equal(backoffDelay(0, 500, 30000, mid), 500);
  assert.equal(backoffDelay(3, 500, 30000, mid), 4000);
  assert.equal(backoffDelay(20, 500, 30000, mid), 30000);
  assert.ok(backoffDelay(100, 500, 30000, () => 0.99) <= 30000);
});

test('simulated signals: sine + noise, spikes and dropouts, repeatable with a seed', () => {
  const sig = [
    { name: 't', base: 20, amplitude: 5, period_s: 60, noise: 0.1, spike_probability: 0.05, spike_magnitude: 30 },
  ];
  const run = () => {
    const rand = mulberry32(42);
    return Array.from({ length: 2000 }, (_, i) => sampleSignals(sig, i, 0.02, rand));
  };
  const a = run();
  assert.deepEqual(a, run());
  const dropouts = a.filter((s) => s.quality === 'bad');
  assert.ok(dropouts.length > 10 && dropouts.every((s) => s.values['t'] === null));
  assert.ok(a.some((s) => s.spikes > 0 && Math.abs((s.values['t'] as number) - 20) > 20));
  const normal = a.filter((s) => s.quality === 'good' && s.spikes === 0).map((s) => s.values['t'] as number);
  assert.ok(normal.every((v) => v > 14 && v < 26));
});
