import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler } from '../../../src/queue/scheduler.js';
import { AdaptiveRate, messageCost, TokenBucket } from '../../../src/queue/bandwidth.js';

const SHARES = [30, 40, 20, 10];

function run(s: Scheduler, next: (number | undefined)[], n: number): number[] {
  const bytes = [0, 0, 0, 0];
  for (let i = 0; i < n; i++) {
    const c = s.pick(next);
    if (c === undefined) break;
    s.charge(c, next[c]!);
    bytes[c]! += next[c]!;
  }
  return bytes;
}

test('all four classes saturated: bytes per class follow the shares', () => {
  const s = new Scheduler({ shares: SHARES, criticalBurstBytes: 4096 });
  const bytes = run(s, [100, 100, 100, 100], 20000);
  const total = bytes.reduce((a, b) => a + b, 0);
  bytes.forEach((b, i) => assert.ok(Math.abs(b / total - SHARES[i]! / 100) < 0.01, `class ${i}: ${b / total}`));
});

test('shares hold with unequal message sizes', () => {
  const s = new Scheduler({ shares: SHARES, criticalBurstBytes: 4096 });
  const bytes = run(s, [120, 900, 333, 1500], 20000);
  const total = bytes.reduce((a, b) => a + b, 0);
  bytes.forEach((b, i) => assert.ok(Math.abs(b / total - SHARES[i]! / 100) < 0.01, `class ${i}: ${b / total}`));
});

test('work-conserving: an idle class share goes to the busy ones in proportion', () => {
  const s = new Scheduler({ shares: SHARES, criticalBurstBytes: 0 });
  const bytes = run(s, [undefined, 100, undefined, 100], 10000);
  const total = bytes[1]! + bytes[3]!;
  assert.ok(Math.abs(bytes[1]! / total - 0.8) < 0.01);
  assert.ok(Math.abs(bytes[3]! / total - 0.2) < 0.01);
});

test('a single backlogged class gets everything', () => {
  const s = new Scheduler({ shares: SHARES, criticalBurstBytes: 1000 });
  assert.deepEqual(run(s, [undefined, undefined, undefined, 50], 100), [0, 0, 0, 5000]);
});

test('a CRITICAL message within its share goes next, ahead of a LOW flood', () => {
  const s = new Scheduler({ shares: SHARES, criticalBurstBytes: 4096 });
  run(s, [undefined, undefined, undefined, 500], 1000); // long LOW flood builds no debt for CRITICAL
  for (let i = 0; i < 50; i++) {
    assert.equal(s.pick([200, undefined, undefined, 500]), 0);
    s.charge(0, 200);
    // a few LOW messages between alarms: CRITICAL stays within its share
    for (let k = 0; k < 3; k++) {
      assert.equal(s.pick([undefined, undefined, undefined, 500]), 3);
      s.charge(3, 500);
    }
  }
});

test('a CRITICAL flood is policed back to its share and cannot starve the others', () => {
  const s = new Scheduler({ shares: SHARES, criticalBurstBytes: 4096 });
  const bytes = run(s, [100, undefined, undefined, 100], 20000);
  const total = bytes[0]! + bytes[3]!;
  assert.ok(bytes[3]! / total > 0.2, `LOW got ${bytes[3]! / total}`);
  assert.ok(bytes[0]! / total < 0.8, `CRITICAL got ${bytes[0]! / total}`);
});

test('a class returning from idle earns no credit for its idle time', () => {
  const s = new Scheduler({ shares: [25, 25, 25, 25], criticalBurstBytes: 0 });
  run(s, [undefined, 100, undefined, undefined], 1000);
  // MEDIUM appears: it must share 50/50 with HIGH from now on, not monopolise the link.
  const bytes = run(s, [undefined, 100, 100, undefined], 100);
  assert.ok(Math.abs(bytes[1]! - bytes[2]!) <= 200, JSON.stringify(bytes));
});

test('token bucket: takes within the burst, then asks to wait rate-proportionally', () => {
  const b = new TokenBucket(1000, 500, 0);
  assert.equal(b.take(400, 0), 0);
  const wait = b.take(400, 0);
  assert.equal(wait, 300); // 300 bytes missing at 1000 B/s
  assert.equal(b.take(400, 300), 0);
});

test('token bucket: a message larger than the burst passes once the bucket is full, then leaves debt', () => {
  const b = new TokenBucket(1000, 500, 0);
  assert.equal(b.take(2000, 0), 0);
  assert.ok(b.take(100, 0) > 1000);
});

test('adaptive rate: multiplicative decrease on slow acks, additive increase back to the cap', () => {
  const a = new AdaptiveRate({ maxBps: 10000, minBps: 1000, targetLatencyMs: 500 }, 0);
  a.onAck(2000, 1000);
  assert.equal(a.rate, 7000);
  a.onAck(2000, 2000);
  assert.equal(a.rate, 4900);
  let t = 2000;
  for (let i = 0; i < 200; i++) a.onAck(10, (t += 1000));
  assert.equal(a.rate, 10000);
  for (let i = 0; i < 50; i++) a.onTimeout((t += 10));
  assert.equal(a.rate, 1000);
});

test('message cost counts MQTT framing, properties, PUBACK and link overhead', () => {
  const c = messageCost(20, 21, 0, 100, 40);
  // publish: 1 + 2 (remaining length 157 needs two varint bytes) + (2+20 topic + 2 packet id + 1 + 32 props)
  // + 100 payload; + 4 PUBACK + 40 link
  assert.equal(c, 1 + 2 + 2 + 20 + 2 + 1 + (1 + 2 + 6 + 2 + 21) + 100 + 4 + 40);
});
