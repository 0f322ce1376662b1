// Outbox sizing for an outage (README "Sizing the outbox"): stored bytes per reading, as the quota
// (queue.outbox.max_bytes) counts them and as the SQLite file grows, for readings that arrive one
// per MQTT publish / CoAP POST (one row each) and for sources that hand over batches.
//   node dist/scripts/bench-outbox-size.js [readings=200000] [devices=100]
// Reference: the JSON payload the device sent (what Mosquitto's own persistence would hold, at least).
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../src/config/load.js';
import type { Reading } from '../src/pipeline/reading.js';
import { binaryReadingCodec } from '../src/queue/codec.js';
import { Outbox } from '../src/queue/outbox.js';
import { openDatabase } from '../src/store/db.js';

const total = Number(process.argv[2] ?? 200_000);
const devices = Number(process.argv[3] ?? 100);

async function fill(perRow: number): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'egw-size-'));
  const path = join(dir, 'gateway.db');
  // No uplink: everything stays, as in an outage. Quota and age far away so nothing is evicted.
  const config = parseConfig(
    'version: 1\nqueue: { outbox: { max_bytes: 100000000000, max_age_s: 31536000, commit_max_rows: 5000 } }\n',
  );
  const db = openDatabase({ path, durability: 'normal' });
  const outbox = new Outbox({ db, log: pino({ level: 'warn' }), config: config.queue, codec: binaryReadingCodec });
  let json = 0;
  for (let i = 0; i < total; i += 10000) {
    const wait: Promise<void>[] = [];
    for (let k = i; k < Math.min(total, i + 10000); k += perRow) {
      const dev = `dev-${String((k / perRow) % devices).padStart(3, '0')}`;
      const batch: Reading[] = [];
      for (let j = 0; j < perRow; j++) {
        // A typical environmental sensor: two measured values and a battery level, 1 s apart.
        const values = {
          temperature: Math.round((20 + Math.sin((k + j) / 500) * 5) * 100) / 100,
          humidity: Math.round((50 + Math.cos((k + j) / 700) * 10) * 10) / 10,
          battery: 3.7,
        };
        json += Buffer.byteLength(JSON.stringify({ ts: 1_700_000_000_000 + (k + j) * 1000, ...values }));
        batch.push({ deviceId: dev, ts: 1_700_000_000_000 + (k + j) * 1000, values, quality: 'good', source: 'mqtt' });
      }
      wait.push(outbox.enqueueReadings(batch, `sensors/${dev}/data`));
    }
    await Promise.all(wait);
  }
  const quota = outbox.classStats().reduce((s, c) => s + c.bytes, 0);
  outbox.close();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const file = statSync(path).size;
  rmSync(dir, { recursive: true, force: true });
  return {
    readingsPerRow: perRow,
    quotaBytesPerReading: +(quota / total).toFixed(1),
    fileBytesPerReading: +(file / total).toFixed(1),
    jsonPayloadBytesPerReading: +(json / total).toFixed(1),
  };
}

for (const perRow of [1, 10])
  console.log(JSON.stringify({ bench: 'outbox-size', readings: total, devices, ...(await fill(perRow)) }));
