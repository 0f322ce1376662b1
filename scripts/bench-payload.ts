// Uplink bytes per reading for each cloud profile's payload, at batch 1 and batch 100, through the
// profiles' own encoders (src/uplink/profiles/): the binary codec (mqtt profile, the reference),
// JSON (aws-iot; azure-iot-hub adds its property bag to the topic) and Sparkplug B DDATA.
//   node dist/scripts/bench-payload.js [--values 4] [--messages 200]
// "payload" = PUBLISH payload bytes; "wire" = the whole PUBLISH packet (fixed header, topic, packet
// id, MQTT 5 properties where the profile sends them). Sparkplug's DBIRTH (names, once per device
// and session) is left out of the per-reading figure and shown on its own.
import { encodeBatch, MEDIA_TYPE } from '../src/codec/index.js';
import { parseConfig } from '../src/config/load.js';
import type { Reading } from '../src/pipeline/reading.js';
import { createProfile, type CloudProfile, type WirePublish } from '../src/uplink/profiles/index.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const nValues = opt('--values', 4);
const nMessages = opt('--messages', 200);
const KEY = Buffer.alloc(32, 1).toString('base64');

function varintLen(n: number): number {
  let k = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    k++;
  }
  return k;
}

/** Bytes of one PUBLISH packet (QoS 1) as the profile would send it. */
function wireBytes(w: WirePublish, v5: boolean): number {
  let props = 0;
  if (v5 && w.properties) {
    for (const [k, v] of Object.entries(w.properties.userProperties ?? {})) {
      props += 1 + 2 + Buffer.byteLength(k) + 2 + Buffer.byteLength(String(v));
    }
    if (w.properties.contentType) props += 1 + 2 + Buffer.byteLength(w.properties.contentType);
  }
  const variable = 2 + Buffer.byteLength(w.topic) + (w.qos > 0 ? 2 : 0) + (v5 ? varintLen(props) + props : 0);
  const remaining = variable + w.payload.length;
  return 1 + varintLen(remaining) + remaining;
}

// A deterministic sensor: a few drifting values, one-second period.
let state = 12345;
const rnd = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
function reading(i: number): Reading {
  const values: Record<string, number | boolean> = {};
  const names = ['temperature', 'humidity', 'pressure', 'vibration', 'current', 'voltage', 'flow', 'level'];
  for (let k = 0; k < nValues; k++)
    values[names[k % names.length]! + (k >= names.length ? k : '')] = Math.round((20 + k * 10 + rnd() * 2) * 100) / 100;
  return { deviceId: 'press-07', ts: 1700000000000 + i * 1000, values, quality: 'good', source: 'mqtt' };
}

function profile(yaml: string): CloudProfile {
  const c = parseConfig(`version: 1\ngateway: { id: gw-1 }\nuplink: ${yaml}\n`);
  return createProfile(c.uplink, 'gw-1', () => 1700000000000);
}

const profiles: [string, CloudProfile][] = [
  ['codec (mqtt)', profile('{ profile: mqtt }')],
  [
    'JSON (aws-iot)',
    profile('{ profile: aws-iot, url: "mqtts://x:8883", cert_file: c, key_file: k, aws: { thing_name: gw-1 } }'),
  ],
  [
    'JSON (azure-iot-hub)',
    profile(
      `{ profile: azure-iot-hub, url: "mqtts://h:8883", azure: { hub: h.azure-devices.net, device_key: "${KEY}" } }`,
    ),
  ],
  ['Sparkplug B (sparkplug-b)', profile('{ profile: sparkplug-b }')],
];

const rows: string[] = [];
let ref: Record<number, number> = {};
for (const [label, p] of profiles) {
  p.onConnected({ publish: () => undefined });
  for (const batch of [1, 100]) {
    let payload = 0;
    let wire = 0;
    let readings = 0;
    let birth = 0;
    let seq = 0;
    for (let m = 0; m < nMessages; m++) {
      const rs = Array.from({ length: batch }, () => reading(seq++));
      const ws = p.encode({
        id: `a1b2c3d4e5f6-${m}`,
        topic: 'sensors/press-07/data',
        payload: encodeBatch(rs),
        contentType: MEDIA_TYPE,
        readings: batch,
      });
      for (const w of ws) {
        if (w.topic.includes('/DBIRTH/')) {
          birth = wireBytes(w, p.protocolVersion === 5);
          continue;
        }
        payload += w.payload.length;
        wire += wireBytes(w, p.protocolVersion === 5);
      }
      readings += batch;
    }
    const perWire = wire / readings;
    if (label.startsWith('codec')) ref[batch] = perWire;
    rows.push(
      `| ${label} | ${batch} | ${(payload / readings).toFixed(1)} | ${perWire.toFixed(1)} | ${(perWire / ref[batch]!).toFixed(2)}× | ${birth > 0 ? birth : '—'} |`,
    );
  }
}
ref = {};
console.log(`${nValues} numeric values per reading, ${nMessages} messages per row`);
console.log(
  '| payload | batch | payload B/reading | wire B/reading | vs codec | DBIRTH B (once per device and session) |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(r);
