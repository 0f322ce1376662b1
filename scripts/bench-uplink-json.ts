/**
 * Uplink bytes per reading: the binary codec (uplink.payload_format: codec, the default) vs JSON
 * (payload_format: json, docs/uplink.md), at batch 1 and 100, through the encoders the uplink uses
 * (the outbox's codec batch, then the uplink's PayloadFormat), plus the MQTT 5 PUBLISH framing the
 * token bucket counts (topic, msg-id and content-type properties, PUBACK; no TCP/TLS overhead).
 *
 *   npm run build && node dist/scripts/bench-uplink-json.js [devices=20] [seed=1]
 *
 * Readings: three values (temperature, humidity, battery) at 1 Hz with sensor-like noise, as in
 * bench-outbox-size; 20 devices so numbers are not one lucky series.
 */
import { MEDIA_TYPE } from '../src/codec/index.js';
import type { Reading } from '../src/pipeline/reading.js';
import { messageCost } from '../src/queue/bandwidth.js';
import { binaryReadingCodec } from '../src/queue/codec.js';
import type { UplinkMessage } from '../src/queue/outbox.js';
import { codecFormat, jsonFormat, type PayloadFormat } from '../src/uplink/formats.js';

const DEVICES = Number(process.argv[2] ?? 20);
let seed = Number(process.argv[3] ?? 1);
const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const ID_BYTES = 21; // outbox message ids: 12 hex chars of the store uid + "-" + 8 of the sequence (queue/outbox idLength)

function series(dev: string, n: number, t0: number): Reading[] {
  let temp = 18 + rnd() * 8;
  let hum = 40 + rnd() * 20;
  const out: Reading[] = [];
  for (let i = 0; i < n; i++) {
    temp += (rnd() - 0.5) * 0.2;
    hum += (rnd() - 0.5) * 0.5;
    out.push({
      deviceId: dev,
      ts: t0 + i * 1000,
      values: {
        temperature: Math.round(temp * 100) / 100,
        humidity: Math.round(hum * 10) / 10,
        battery: Math.round((3.7 - i * 0.0001) * 1000) / 1000,
      },
      quality: 'good',
      source: 'mqtt',
    });
  }
  return out;
}

function message(readings: Reading[], id: string): UplinkMessage {
  const dev = readings[0]!.deviceId;
  return {
    id,
    cls: 2,
    topic: `sensors/${dev}/data`,
    payload: binaryReadingCodec.encodeUplink(readings),
    contentType: MEDIA_TYPE,
    readings: readings.length,
    bytes: 0,
    t: 0,
    ttl: 0,
    seqs: [],
    claim: undefined,
    claimed: true,
  };
}

const prefix = 'edge/gw-0001';
const rows: string[] = [];
const result: Record<string, { payload: number; wire: number }> = {};
for (const batch of [1, 100]) {
  for (const format of [codecFormat, jsonFormat] as PayloadFormat[]) {
    let payload = 0;
    let wire = 0;
    let n = 0;
    for (let d = 0; d < DEVICES; d++) {
      const dev = `dev-${String(d).padStart(3, '0')}`;
      const all = series(dev, 100, 1_764_460_800_000);
      for (let i = 0; i < all.length; i += batch) {
        const msg = message(all.slice(i, i + batch), `a1b2c3d4e5f6-${String(d * 100 + i).padStart(8, '0')}`);
        const enc = format.encode(msg);
        payload += enc.payload.byteLength;
        wire += messageCost(
          Buffer.byteLength(`${prefix}/${msg.topic}`),
          ID_BYTES,
          enc.contentType.length,
          enc.payload.byteLength,
          0,
        );
        n += msg.readings;
      }
    }
    result[`${format.name}@${batch}`] = { payload: payload / n, wire: wire / n };
  }
  const c = result[`codec@${batch}`]!;
  const j = result[`json@${batch}`]!;
  rows.push(
    `| ${batch} | ${c.payload.toFixed(1)} B | ${j.payload.toFixed(1)} B | ${(j.payload / c.payload).toFixed(1)}× | ${c.wire.toFixed(1)} B | ${j.wire.toFixed(1)} B | ${(j.wire / c.wire).toFixed(1)}× |`,
  );
}
console.log(`bytes per reading, ${DEVICES} devices × 100 readings, 3 values each\n`);
console.log(
  '| batch | codec payload | JSON payload | JSON/codec | codec on the wire | JSON on the wire | JSON/codec |',
);
console.log(
  '| ----- | ------------- | ------------ | ---------- | ----------------- | ---------------- | ---------- |',
);
for (const r of rows) console.log(r);
