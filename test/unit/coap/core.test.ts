import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from 'cbor-x';
import { Block1Assembler } from '../../../src/coap/block1.js';
import { encodeResponse, inspectDatagram } from '../../../src/coap/datagram.js';
import { filterLinks, formatLinks, linksOf } from '../../../src/coap/link-format.js';
import { decodeReadings, PayloadError } from '../../../src/coap/payload.js';
import { RateLimiter } from '../../../src/coap/rate-limit.js';
import { Router } from '../../../src/coap/router.js';

describe('inspectDatagram (RFC 7252 §3)', () => {
  it('accepts a GET with a token, options and payload, and reads Block1/Size1', () => {
    // CON POST, TKL 2, MID 0x1234, token abcd, Uri-Path "s" (11), Block1 (27) NUM 2 M SZX 6, Size1 (60) 3000
    const b = Buffer.from([
      0x42, 0x02, 0x12, 0x34, 0xab, 0xcd, 0xb1, 0x73, 0xd1, 0x03, 0x2e, 0xd2, 0x14, 0x0b, 0xb8, 0xff, 0x01,
    ]);
    const r = inspectDatagram(b);
    assert.ok(r.ok);
    assert.equal(r.info.messageId, 0x1234);
    assert.deepEqual(r.info.block1, { num: 2, more: true, size: 1024 });
    assert.equal(r.info.size1, 3000);
    assert.equal(r.info.payloadLength, 1);
  });
  const bad: [string, number[]][] = [
    ['truncated header', [0x40, 0x01]],
    ['unknown version', [0x80, 0x01, 0, 1]],
    ['token length 9-15 is reserved', [0x49, 0x01, 0, 1]],
    ['truncated token', [0x44, 0x01, 0, 1, 1]],
    ['reserved option nibble 15', [0x40, 0x01, 0, 1, 0xf0]],
    ['truncated option delta', [0x40, 0x01, 0, 1, 0xe0, 0x01]],
    ['option value past end of datagram', [0x40, 0x01, 0, 1, 0xb5, 0x61]],
    ['payload marker without payload', [0x40, 0x01, 0, 1, 0xff]],
    ['empty message with content', [0x40, 0x00, 0, 1, 0x61]],
    ['Block1 SZX 7 is reserved', [0x40, 0x02, 0, 1, 0xd1, 0x0e, 0x07]],
  ];
  for (const [reason, bytes] of bad) {
    it(`refuses: ${reason}`, () => assert.deepEqual(inspectDatagram(Buffer.from(bytes)), { ok: false, reason }));
  }
  it('encodes a piggybacked 4.13 with Size1', () => {
    const r = inspectDatagram(Buffer.from([0x41, 0x02, 0, 7, 0x99]));
    assert.ok(r.ok);
    const out = encodeResponse(r.info, 4, 13, 1024);
    assert.deepEqual([...out], [0x61, 0x8d, 0, 7, 0x99, 0xd2, 47, 0x04, 0x00]);
  });
});

describe('link format (RFC 6690)', () => {
  const router = new Router();
  router.add({ path: '/sensors', rt: 'edge.sensors', if: 'core.ll', ct: [50], methods: {} });
  router.add({
    path: '/sensors/{id}',
    rt: 'edge.reading',
    ct: [50, 60],
    obs: true,
    instances: () => ['/sensors/a'],
    methods: {},
  });
  router.add({ path: '/mgmt/x', hidden: true, methods: {} });
  const links = linksOf(router.resources());
  it('lists concrete paths with attributes, hides hidden ones', () => {
    assert.equal(
      formatLinks(links),
      '</sensors>;rt="edge.sensors";if="core.ll";ct=50,</sensors/a>;rt="edge.reading";ct="50 60";obs',
    );
  });
  it('filters by attribute, prefix and href (§4.1)', () => {
    assert.deepEqual(
      filterLinks(links, { rt: 'edge.r*' }).map((l) => l.href),
      ['/sensors/a'],
    );
    assert.deepEqual(
      filterLinks(links, { ct: '60' }).map((l) => l.href),
      ['/sensors/a'],
    );
    assert.deepEqual(
      filterLinks(links, { href: '/sensors' }).map((l) => l.href),
      ['/sensors'],
    );
    assert.equal(filterLinks(links, { rt: 'none' }).length, 0);
  });
  it('routes literal paths before parameters', () => {
    assert.equal(router.match(['sensors'])?.resource.path, '/sensors');
    assert.deepEqual(router.match(['sensors', 'x'])?.params, { id: 'x' });
    assert.equal(router.match(['nope']), undefined);
  });
});

describe('decodeReadings', () => {
  const now = 1_700_000_000_000;
  it('reads the values form, the flat form, batches and CBOR alike', () => {
    const a = decodeReadings(Buffer.from('{"values":{"t":1},"ts":5,"quality":"bad"}'), 50, 'd1', now);
    assert.deepEqual(a, [{ deviceId: 'd1', ts: 5, values: { t: 1 }, quality: 'bad', source: 'coap' }]);
    const b = decodeReadings(Buffer.from('[{"t":1},{"t":2,"ts":"1970-01-01T00:00:01Z"}]'), undefined, 'd1', now);
    assert.deepEqual(
      b.map((r) => [r.ts, r.values['t']]),
      [
        [now, 1],
        [1000, 2],
      ],
    );
    const c = decodeReadings(encode({ on: true, level: null }), 60, 'd1', now);
    assert.deepEqual(c[0]!.values, { on: true, level: null });
  });
  const refuse = (payload: string, ct: number | undefined, code: string, msg: RegExp) =>
    assert.throws(
      () => decodeReadings(Buffer.from(payload), ct, 'd1', now),
      (e: unknown) => e instanceof PayloadError && e.coapCode === code && msg.test(e.message),
    );
  it('refuses bad payloads with a reason', () => {
    refuse('{', 50, '4.00', /not JSON/);
    refuse('{"t":[1]}', 50, '4.00', /arrays are not values/);
    refuse('{"bad name":1}', 50, '4.00', /not allowed/);
    refuse('{}', 50, '4.00', /no values/);
    refuse('{"__proto__":{"x":1}}', 50, '4.00', /not allowed/);
    refuse('{"values":{"t":1},"extra":2}', 50, '4.00', /unknown key/);
    refuse('{"t":1,"ts":"1"}', 50, '4.00', /ts must be/);
    refuse('{"t":1,"ts":2e15}', 50, '4.00', /ts must be/);
    refuse('{"t":1,"quality":"great"}', 50, '4.00', /quality/);
    refuse('[]', 50, '4.00', /batch must hold/);
    refuse('<x/>', 41, '4.15', /not accepted/);
  });
});

describe('Block1Assembler', () => {
  const opts = { maxBytes: 100, maxTransfers: 2, idleMs: 1000 };
  it('assembles in order, re-acks a repeated block, completes on M=0', () => {
    const a = new Block1Assembler(opts);
    assert.equal(a.offer('k', { num: 0, more: true, size: 16 }, Buffer.alloc(16, 1), 0).kind, 'continue');
    assert.equal(a.offer('k', { num: 0, more: true, size: 16 }, Buffer.alloc(16, 1), 1).kind, 'continue');
    const done = a.offer('k', { num: 1, more: false, size: 16 }, Buffer.alloc(5, 2), 2);
    assert.equal(done.kind, 'complete');
    assert.equal(done.kind === 'complete' && done.payload.length, 21);
  });
  it('refuses gaps (4.08), unknown transfers and bodies over the limit (4.13)', () => {
    const a = new Block1Assembler(opts);
    assert.equal(a.offer('x', { num: 3, more: false, size: 16 }, Buffer.alloc(1), 0).kind, 'incomplete');
    a.offer('k', { num: 0, more: true, size: 64 }, Buffer.alloc(64), 0);
    assert.equal(a.offer('k', { num: 1, more: true, size: 64 }, Buffer.alloc(64), 0).kind, 'too-large');
    a.offer('g', { num: 0, more: true, size: 16 }, Buffer.alloc(16), 0);
    assert.equal(a.offer('g', { num: 2, more: false, size: 16 }, Buffer.alloc(1), 0).kind, 'incomplete');
  });
  it('forgets idle transfers and bounds their number', () => {
    const a = new Block1Assembler(opts);
    a.offer('a', { num: 0, more: true, size: 16 }, Buffer.alloc(16), 0);
    a.offer('b', { num: 0, more: true, size: 16 }, Buffer.alloc(16), 0);
    a.offer('c', { num: 0, more: true, size: 16 }, Buffer.alloc(16), 0);
    assert.equal(a.size, 2);
    assert.equal(a.offer('c', { num: 1, more: false, size: 16 }, Buffer.alloc(1), 5000).kind, 'incomplete');
  });
});

describe('RateLimiter', () => {
  it('allows the burst, then the sustained rate, per key', () => {
    const r = new RateLimiter({ perSecond: 10, burst: 3, maxKeys: 2 });
    assert.deepEqual(
      [1, 2, 3, 4].map(() => r.take('a', 0)),
      [true, true, true, false],
    );
    assert.equal(r.take('b', 0), true);
    assert.equal(r.take('a', 100), true); // 0.1 s × 10/s = 1 token
    assert.equal(r.take('a', 100), false);
    r.take('c', 0);
    assert.equal(r.size, 2);
  });
});
