import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceRegistry } from '../../../src/devices/registry.js';
import { DeviceStatusPublisher } from '../../../src/devices/status.js';
import { createLogger } from '../../../src/log/logger.js';
import type { PublishOutcome, PublishRequest, Publisher } from '../../../src/publisher/types.js';
import { openDatabase } from '../../../src/store/db.js';

const log = createLogger({ level: 'silent' });

/** Records requests; `fail` makes the outbox leg reject (disk full). */
class Recorder implements Publisher {
  readonly sent: PublishRequest[] = [];
  fail = false;
  async publish(req: PublishRequest): Promise<PublishOutcome> {
    this.sent.push(req);
    if (this.fail) throw new Error('disk full');
    return { local: req.local !== false, uplink: true };
  }
}

const doc = (r: PublishRequest) => JSON.parse(String(r.payload)) as { online: boolean; reason: string | null };

test('transitions become retained devices/{id}/status; MQTT devices only to the uplink; stale online after a crash', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-status-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'gateway.db');
  let db = openDatabase({ path, durability: 'normal' });
  let devices = new DeviceRegistry(db, () => 1000);
  const pub = new Recorder();
  const status = new DeviceStatusPublisher({ devices, publisher: pub, log, now: () => 42 });
  status.attach();
  await status.start();
  assert.equal(pub.sent.length, 0, 'nothing known yet');

  devices.setOnline('sim-1', 'simulated', true);
  devices.setOnline('sim-1', 'simulated', true); // no transition: nothing new
  devices.setOnline('mq-1', 'mqtt', true);
  devices.setOnline('line-1', 'serial', true);
  devices.setOnline('line-1', 'serial', false, 'port closed');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    pub.sent.map((r) => [r.topic, doc(r).online, doc(r).reason, r.local]),
    [
      ['devices/sim-1/status', true, null, true],
      ['devices/mq-1/status', true, null, false],
      ['devices/line-1/status', true, null, true],
      ['devices/line-1/status', false, 'port closed', true],
    ],
  );
  for (const r of pub.sent) {
    assert.equal(r.retain, true);
    assert.equal(r.priority, undefined, 'the queue rules classify it (devices/+/status → HIGH)');
    assert.equal(r.source, 'system');
  }
  assert.deepEqual(JSON.parse(String(pub.sent[0]!.payload)), {
    online: true,
    reason: null,
    transport: 'simulated',
    ts: 42,
  });

  // A rejected commit is counted, never thrown into the source that reported the transition.
  pub.fail = true;
  assert.doesNotThrow(() => devices.setOnline('sim-1', 'simulated', false, 'stopped'));
  await new Promise((r) => setImmediate(r));
  assert.equal(status.health().detail?.['failures'], 1);
  pub.fail = false;

  // "Crash" with sim-1 and mq-1 online: after a restart both are offline (reason restart) and
  // their stale retained "online" is replaced at start.
  devices.setOnline('sim-1', 'simulated', true);
  await status.stop();
  devices.flush();
  db.close();
  db = openDatabase({ path, durability: 'normal' });
  devices = new DeviceRegistry(db);
  const pub2 = new Recorder();
  const status2 = new DeviceStatusPublisher({ devices, publisher: pub2, log });
  await status2.start();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(pub2.sent.map((r) => [r.topic, doc(r).online, doc(r).reason, r.local]).sort(), [
    ['devices/mq-1/status', false, 'restart', false],
    ['devices/sim-1/status', false, 'restart', true],
  ]);
  await status2.stop();
  devices.setOnline('sim-1', 'simulated', true);
  assert.equal(pub2.sent.length, 2, 'stopped: no longer publishing');
  db.close();
});
