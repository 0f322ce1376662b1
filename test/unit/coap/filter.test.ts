// The datagram filter in front of the coap library: values in, a verdict out.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AllowList } from '../../../src/config/cidr.js';
import { filterDatagram } from '../../../src/coap/filter.js';
import { RateLimiter } from '../../../src/coap/rate-limit.js';
import { Block2Cache, blockNumber } from '../../../src/coap/block2-cache.js';

const opts = (perSecond = 100, burst = 100) => ({
  allow: new AllowList(['127.0.0.0/8', '::1/128']),
  limiter: new RateLimiter({ perSecond, burst, maxKeys: 100 }),
  maxPayloadBytes: 100,
});
// CON GET, MID 1, no token, Uri-Path "s"
const GET = Buffer.from([0x40, 0x01, 0x00, 0x01, 0xb1, 0x73]);
const NON_GET = Buffer.from([0x50, 0x01, 0x00, 0x02, 0xb1, 0x73]);
const ACK = Buffer.from([0x60, 0x00, 0x00, 0x03]);
const RESPONSE = Buffer.from([0x40, 0x45, 0x00, 0x04]); // a 2.05 sent to the server
const post = (n: number) =>
  Buffer.concat([Buffer.from([0x40, 0x02, 0x00, 0x05, 0xb1, 0x73, 0xff]), Buffer.alloc(n, 1)]);

describe('filterDatagram', () => {
  it('passes well-formed requests and empty ACKs from allowed sources', () => {
    const o = opts();
    assert.deepEqual(filterDatagram(o, GET, '127.0.0.1', 0), { action: 'pass' });
    assert.deepEqual(filterDatagram(o, GET, '::ffff:127.0.0.9', 0), { action: 'pass' });
    assert.deepEqual(filterDatagram(o, ACK, '::1', 0), { action: 'pass' });
  });
  it('drops malformed datagrams first, then unlisted sources (requests and ACKs alike), unanswered', () => {
    const o = opts();
    assert.deepEqual(filterDatagram(o, Buffer.from([0x40]), '10.0.0.1', 0), { action: 'drop', reason: 'malformed' });
    for (const m of [GET, ACK, post(1000)])
      assert.deepEqual(filterDatagram(o, m, '10.0.0.1', 0), { action: 'drop', reason: 'source not allowed' });
    assert.deepEqual(filterDatagram(o, GET, 'garbage', 0), { action: 'drop', reason: 'source not allowed' });
    assert.deepEqual(filterDatagram(o, RESPONSE, '127.0.0.1', 0), { action: 'drop', reason: 'not a request' });
  });
  it('rate limit: CON gets 5.03, NON is dropped', () => {
    const o = opts(1, 1);
    assert.equal(filterDatagram(o, GET, '127.0.0.1', 0).action, 'pass');
    const v = filterDatagram(o, GET, '127.0.0.1', 0);
    assert.ok(v.action === 'answer' && v.reason === 'rate limit');
    assert.equal(v.reply[1], (5 << 5) | 3);
    assert.deepEqual(filterDatagram(o, NON_GET, '127.0.0.1', 0), { action: 'drop', reason: 'rate limit' });
  });
  it('oversized body: 4.13 with Size1; Block1 requests go to the assembler', () => {
    const o = opts();
    const v = filterDatagram(o, post(101), '127.0.0.1', 0);
    assert.ok(v.action === 'answer' && v.code === '4.13');
    assert.equal(filterDatagram(o, post(100), '127.0.0.1', 0).action, 'pass');
    // Block1 (27) NUM 0 M SZX 2 (64 bytes): option delta 27-11=16 → nibble 13 + 3
    const b1 = Buffer.concat([
      Buffer.from([0x40, 0x02, 0x00, 0x06, 0xb1, 0x73, 0xd1, 0x03, 0x0a, 0xff]),
      Buffer.alloc(64),
    ]);
    assert.deepEqual(filterDatagram(o, b1, '127.0.0.1', 0), {
      action: 'block1',
      block1: { num: 0, more: true, size: 64 },
    });
  });
});

describe('Block2Cache', () => {
  it('serves a representation for its lifetime, bounded in count', () => {
    const c = new Block2Cache(1000, 2);
    c.put('a', { code: '2.05', payload: 'A' }, 0);
    assert.equal(c.get('a', 999)?.payload, 'A');
    assert.equal(c.get('a', 1000), undefined);
    c.put('b', { code: '2.05' }, 0);
    c.put('c', { code: '2.05' }, 0);
    assert.equal(c.size, 2);
    assert.equal(c.get('a', 1), undefined);
    assert.equal(blockNumber([{ name: 'Block2', value: Buffer.from([0x2e]) }], 'Block2'), 2);
    assert.equal(blockNumber([{ name: 'Block2', value: Buffer.alloc(4) }], 'Block2'), 0);
  });
});
