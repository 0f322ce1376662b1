import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expiryReason, nextEviction } from '../../../src/queue/expiry.js';
import { groupSize } from '../../../src/queue/lanes.js';

const DAY = 86_400_000;

test('expiry: a TTL of 0 never expires by TTL, whatever the class; max age still bounds it', () => {
  assert.equal(expiryReason(0, 0, DAY, 10_000_000), undefined);
  assert.equal(expiryReason(0, 0, DAY, DAY + 1), 'age');
  assert.equal(expiryReason(0, 5000, DAY, 5000), undefined); // exactly the TTL: still alive
  assert.equal(expiryReason(0, 5000, DAY, 5001), 'ttl');
  assert.equal(expiryReason(1000, 5000, DAY, 5500), undefined);
  // TTL wins the tie with age (both expired): counted as ttl
  assert.equal(expiryReason(0, 1000, 1000, 2000), 'ttl');
  // a clock behind the row (cannot happen on the gateway clock) expires nothing
  assert.equal(expiryReason(10_000, 1, DAY, 0), undefined);
});

test('quota: evicts LOW first, then MEDIUM, HIGH, CRITICAL last; nothing when within quota', () => {
  const none = [false, false, false, false];
  assert.equal(nextEviction([10, 10, 10, 10], 40, none), undefined);
  assert.equal(nextEviction([10, 10, 10, 11], 40, none), 3);
  assert.equal(nextEviction([10, 10, 21, 0], 40, none), 2);
  assert.equal(nextEviction([50, 0, 0, 0], 40, none), 0);
  // LOW has only in-flight messages left: MEDIUM is next
  assert.equal(nextEviction([10, 10, 10, 20], 40, [false, false, false, true]), 2);
  // everything exhausted: nothing more to evict
  assert.equal(nextEviction([100, 0, 0, 0], 40, [true, false, false, false]), undefined);
});

test('batch forming: at least one row, then within max readings and max bytes', () => {
  const rows = (spec: [number, number][]) => {
    const list = spec.map(([n, len]) => ({ n, payload: { length: len } }));
    return { length: list.length, at: (i: number) => list[i] };
  };
  assert.equal(groupSize(rows([]), 1000, 65536), 0);
  assert.equal(groupSize(rows([[5000, 100]]), 1000, 65536), 1); // an oversized row still goes, alone
  assert.equal(
    groupSize(
      rows([
        [400, 10],
        [400, 10],
        [400, 10],
      ]),
      1000,
      65536,
    ),
    2,
  );
  assert.equal(
    groupSize(
      rows([
        [1, 300],
        [1, 300],
        [1, 300],
      ]),
      1000,
      700,
    ),
    2,
  );
  assert.equal(
    groupSize(
      rows([
        [1, 300],
        [1, 300],
        [1, 300],
      ]),
      1000,
      900,
    ),
    3,
  );
});
