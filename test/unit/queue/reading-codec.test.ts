import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../../src/config/load.js';
import { decode } from '../../../src/codec/index.js';
import { binaryReadingCodec } from '../../../src/queue/codec.js';
import { Outbox, type UplinkMessage } from '../../../src/queue/outbox.js';
import { openDatabase } from '../../../src/store/db.js';
import type { Reading } from '../../../src/pipeline/reading.js';

// The uplink's use of the codec (src/queue/codec.ts) carries string values (docs/codec.md
// §Versioning: such messages are format version 2), through an outbox row in a real SQLite file.

const reading = (i: number, values: Reading['values']): Reading => ({
  deviceId: 'pump-2',
  ts: 1_732_262_400_000 + i * 1000,
  values,
  quality: 'good',
  source: 'system', // decodeRow sets 'system': the wire does not carry the source
});

test('binaryReadingCodec: rows and uplink messages carry strings; numeric-only ones stay version 1', () => {
  const rs = [
    reading(0, { temperature: 21.5, state: 'running' }),
    reading(1, { temperature: 21.6, state: 'stopped: E42 ü', note: '' }),
  ];
  const row = binaryReadingCodec.encodeRow(rs);
  assert.equal(row[1]! >> 4, 2, 'a row holding a string is format version 2');
  assert.deepEqual(binaryReadingCodec.decodeRow(row), rs);
  const up = binaryReadingCodec.encodeUplink(rs);
  assert.deepEqual(decode(up, { source: 'system' }), rs);
  const numeric = [reading(0, { temperature: 21.5 })];
  assert.equal(binaryReadingCodec.encodeRow(numeric)[1]! >> 4, 1);
  assert.equal(binaryReadingCodec.encodeUplink(numeric)[1]! >> 4, 1);
});

test('outbox → uplink: a string reading and a numeric one of one device leave as one batch, strings intact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-reading-codec-'));
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  t.after(() => {
    if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const config = parseConfig('version: 1\nqueue:\n  outbox:\n    commit_wait_ms: 2\n').queue;
  let clock = 0;
  const outbox = new Outbox({
    db,
    log: pino({ level: 'silent' }),
    config,
    codec: binaryReadingCodec,
    now: () => clock,
  });
  const a = reading(0, { temperature: 20 });
  const b = reading(1, { temperature: 20.5, state: 'x'.repeat(255), mode: '😀 auto' });
  await outbox.enqueueReadings([a], 'sensors/pump-2/data');
  await outbox.enqueueReadings([b], 'sensors/pump-2/data');
  clock += 60_000; // past every batch window
  const msgs: UplinkMessage[] = [];
  for (let cls = 0; cls < 4; cls++) {
    for (let m = outbox.peek(cls); m && !('waitMs' in m); m = outbox.peek(cls)) msgs.push(outbox.take(cls)!);
  }
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0]!.payload[1]! >> 4, 2);
  assert.deepEqual(binaryReadingCodec.decodeRow(msgs[0]!.payload), [a, b]);
  outbox.close();
});
