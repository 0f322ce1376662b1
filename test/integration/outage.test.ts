import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runOutage, startRig } from './uplink-scenarios.js';

// The full 100,000-reading run is `node dist/scripts/bench-uplink-faults.js outage 100000` (docs/queues.md).
test('outage: readings published at QoS 1 while the cloud is down for part of the run all arrive, duplicates only under the same id', async (t) => {
  const rig = await startRig('queue: { classes: { MEDIUM: { batch_window_ms: 50 } } }');
  t.after(() => rig.close());
  const r = await runOutage(rig, 10000, 4, 120000);
  t.diagnostic(JSON.stringify(r));
  assert.equal(r.acked, 10000);
  assert.equal(r.missing, 0);
  assert.equal(r.crossIdDuplicates, 0);
  assert.ok(r.downSeconds > 0);
});

test('outage with uplink.payload_format json: every reading arrives, read by JSON.parse', async (t) => {
  const rig = await startRig('queue: { classes: { MEDIUM: { batch_window_ms: 50 } } }', 'payload_format: json');
  t.after(() => rig.close());
  const r = await runOutage(rig, 4000, 4, 120000);
  t.diagnostic(JSON.stringify(r));
  assert.equal(r.acked, 4000);
  assert.equal(r.missing, 0);
  assert.equal(r.crossIdDuplicates, 0);
  assert.ok(
    rig.sub.messages.every((m) => m.payload[0] === 0x7b),
    'every message is JSON',
  );
});
