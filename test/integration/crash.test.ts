import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCrashLoop, startRig } from './uplink-scenarios.js';

// kill -9 of the gateway process 20 times during ingest (cloud down every other round), each followed by
// a restart: every reading a publisher got a PUBACK for reaches the cloud. Longer runs:
// `node dist/scripts/bench-uplink-faults.js crash 50`.
test('crash loop: 20 kill -9 during ingest, every PUBACKed reading reaches the cloud', async (t) => {
  const rig = await startRig('queue: { classes: { MEDIUM: { batch_window_ms: 50 } } }');
  t.after(() => rig.close());
  const r = await runCrashLoop(rig, 20, 4, 400, 120000);
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.acked > 1000, `only ${r.acked} acknowledged`);
  assert.equal(r.missing, 0);
});

test('crash loop with uplink.payload_format json: 8 kill -9, every PUBACKed reading reaches the cloud as JSON', async (t) => {
  const rig = await startRig('queue: { classes: { MEDIUM: { batch_window_ms: 50 } } }', 'payload_format: json');
  t.after(() => rig.close());
  const r = await runCrashLoop(rig, 8, 4, 400, 120000);
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.acked > 100, `only ${r.acked} acknowledged`);
  assert.equal(r.missing, 0);
  assert.ok(
    rig.sub.messages.every((m) => m.payload[0] === 0x7b),
    'every message is JSON',
  );
});
