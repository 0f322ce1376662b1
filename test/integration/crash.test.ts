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
