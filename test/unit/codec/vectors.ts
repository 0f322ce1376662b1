import type { Reading } from '../../../src/pipeline/reading.js';

/**
 * Test vectors of format versions 1 and 2 (2: messages that hold a string value). The same hex strings appear in docs/codec.md §Test vectors;
 * vectors.test.ts checks that the encoder produces them, that both decoders (src/codec and
 * examples/cloud-decoder) read them back to `readings`, and that the docs list them unchanged.
 */
export interface Vector {
  name: string;
  what: string;
  /** Batch when there is more than one reading or `batch` is set. */
  readings: Reading[];
  batch?: boolean;
  compress?: 'auto' | 'never';
  hex: string;
}

const T = 1_732_262_400_000; // 2024-11-22T08:00:00Z

const env = (i: number): Reading => ({
  deviceId: 'press-07-line-b',
  ts: T + i * 1000,
  values: {
    temperature: Math.round((23.4 + i / 10) * 10) / 10,
    humidity: 45.1,
    pressure: 1013.25,
    voltage: 3.31,
    online: true,
    alarm: i === 7,
    low_battery: false,
  },
  quality: 'good',
  source: 'mqtt',
});

export const VECTORS: Vector[] = [
  {
    name: 'single-environment',
    what: 'The issue reading: schema 1 (environment), every field present, 33 bytes.',
    readings: [
      {
        deviceId: 'press-07-line-b',
        ts: T,
        values: {
          temperature: 23.4,
          humidity: 45.1,
          pressure: 1013.2,
          voltage: 3.31,
          online: true,
          alarm: false,
          low_battery: false,
        },
        quality: 'good',
        source: 'mqtt',
      },
    ],
    hex: 'c1100f70726573732d30372d6c696e652d62010080a08a97b532a805d307091401',
  },
  {
    name: 'single-states-by-name-units',
    what:
      'Schema 1 with humidity null (sensor dropout), pressure and voltage absent, temperature not holdable at ' +
      'scale 2 (carried by name as float64), an unknown value co2 by name (scale 0), quality uncertain, and a unit.',
    readings: [
      {
        deviceId: 'th-1',
        ts: T,
        values: { temperature: 0.1 + 0.2, humidity: null, online: false, alarm: true, low_battery: false, co2: 412 },
        quality: 'uncertain',
        source: 'mqtt',
        units: { co2: 'ppm' },
      },
    ],
    hex: 'c1100474682d31011da60080a08a97b53202020b74656d706572617475726503343333333333d33f03636f3210b8060103636f320370706d',
  },
  {
    name: 'batch-non-monotonic',
    what:
      'Batch of 3 on schema 1: timestamps go back by 500 ms then forward (zigzag deltas), a value goes ' +
      'negative, one reading is bad, the last has low_battery absent.',
    readings: [
      { ...env(0), values: { ...env(0).values, temperature: -0.5 } },
      { ...env(1), ts: T - 500, quality: 'bad' },
      {
        ...env(2),
        values: { temperature: 25, humidity: 45.1, pressure: 1013.25, voltage: 3.3, online: true, alarm: false },
      },
    ],
    hex: 'c1110f70726573732d30372d6c696e652d6201030080a08a97b5328320d30700140102e707c025000000010400208827ac0200001301',
  },
  {
    name: 'single-by-name-empty-id',
    what: 'Schema 0 (everything by name) with a 0-length device id: integer, scaled decimal, bool, null.',
    readings: [
      {
        deviceId: '',
        ts: 0,
        values: { rpm: 1500, load: -12.75, running: true, fault: null },
        quality: 'good',
        source: 'mqtt',
      },
    ],
    hex: 'c11000000800040372706d10b817046c6f616412f5130772756e6e696e6702056661756c7400',
  },
  {
    name: 'single-power-meter',
    what: 'Schema 2 (power-meter), every field present.',
    readings: [
      {
        deviceId: 'meter-3',
        ts: T,
        values: {
          voltage: 231.4,
          current: 4.215,
          power: 960.3,
          energy: 12345.678,
          frequency: 49.98,
          power_factor: 0.985,
        },
        quality: 'good',
        source: 'mqtt',
      },
    ],
    hex: 'c110076d657465722d33020080a08a97b5321cee418696019c85e30b031d',
  },
  {
    name: 'batch-deflated',
    what: 'Batch of 20 readings at 1 Hz on schema 1, compressed with raw deflate because that is smaller.',
    readings: Array.from({ length: 20 }, (_, i) => env(i)),
    hex: 'c113b801e32f284a2d2ed63530d7cdc9cc4bd54d6214616858d0357dabd10ad6cbec0c228c0c17f84518181848a599c9d447340d00',
  },
  {
    name: 'single-string-v2',
    what: 'Format version 2: schema 0, an integer and a string value (tag 0x04) carried by name.',
    readings: [{ deviceId: 'pump-2', ts: T, values: { rpm: 1500, state: 'running' }, quality: 'good', source: 'mqtt' }],
    hex: 'c1200670756d702d32000880a08a97b532020372706d10b817057374617465040772756e6e696e67',
  },
  {
    name: 'batch-strings-v2',
    what: 'Format version 2: batch of 2 on schema 1, every field in its field plus a string by name (multi-byte UTF-8).',
    readings: [0, 1].map((i) => ({
      deviceId: 'pump-2',
      ts: T + i * 1000,
      values: {
        temperature: 21.5 + i,
        humidity: 40,
        pressure: 1013.2,
        voltage: 3.3,
        online: true,
        alarm: false,
        low_battery: false,
        state: i === 0 ? 'running' : 'stopped: E42 ü',
      },
      quality: 'good' as const,
      source: 'mqtt' as const,
    })),
    compress: 'never',
    hex: 'c1210670756d702d3201020880a08a97b532ac02cf0f09000101057374617465040772756e6e696e6708d00fc8010000000101057374617465040f73746f707065643a2045343220c3bc',
  },
];
