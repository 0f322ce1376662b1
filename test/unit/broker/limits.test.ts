import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectRateLimiter, PacketSizeScanner, isLoopback } from '../../../src/broker/limits.js';

test('ConnectRateLimiter allows a burst of `rate`, then refills at rate per second', () => {
  let now = 0;
  const rl = new ConnectRateLimiter(3, () => now);
  assert.deepEqual(
    [1, 2, 3, 4].map(() => rl.allow('10.0.0.1')),
    [true, true, true, false],
  );
  assert.ok(rl.allow('10.0.0.2'), 'per address');
  now += 340;
  assert.ok(rl.allow('10.0.0.1'), 'one token back after 1/3 s');
  assert.ok(!rl.allow('10.0.0.1'));
  assert.ok(new ConnectRateLimiter(0, () => now).allow('x'), '0 = off');
});

test('ConnectRateLimiter keeps at most maxAddresses entries', () => {
  const rl = new ConnectRateLimiter(1, () => 0, 2);
  rl.allow('a');
  rl.allow('b');
  rl.allow('c'); // evicts a
  assert.ok(rl.allow('a'), 'a was forgotten, so it has a fresh bucket');
  assert.ok(!rl.allow('c'));
});

/** A PUBLISH-like packet with a body of n bytes. */
function packet(n: number): Buffer {
  const len: number[] = [];
  let x = n;
  do {
    let b = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) b |= 0x80;
    len.push(b);
  } while (x > 0);
  return Buffer.concat([Buffer.from([0x30, ...len]), Buffer.alloc(n, 0x61)]);
}

test('PacketSizeScanner passes packets up to the limit across arbitrary chunking', () => {
  const s = new PacketSizeScanner(1000);
  const stream = Buffer.concat([packet(10), packet(997 - 2), packet(0), packet(300)]);
  for (let i = 0; i < stream.length; i += 7) assert.equal(s.feed(stream.subarray(i, i + 7)), -1);
});

test('PacketSizeScanner flags an oversized packet from its header alone', () => {
  const s = new PacketSizeScanner(1000);
  assert.equal(s.feed(packet(10)), -1);
  const big = packet(268435455).subarray(0, 5); // only the fixed header of a 256 MB packet
  assert.equal(s.feed(big), 1 + 4 + 268435455);
  const s2 = new PacketSizeScanner(1000);
  const p = packet(998); // 1 + 2 + 998 = 1001 bytes
  assert.equal(s2.feed(p.subarray(0, 2)), -1, 'length not complete yet');
  assert.equal(s2.feed(p.subarray(2, 3)), 1001);
});

test('isLoopback recognises v4, v6 and v4-mapped loopback only', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopback(a), a);
  for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '', undefined, '::2', '1127.0.0.1'])
    assert.ok(!isLoopback(a), String(a));
});
