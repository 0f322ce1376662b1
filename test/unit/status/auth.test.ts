import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopbackHost, parseCookies, SessionKeeper, tokenMatches } from '../../../src/status/auth.js';

test('tokenMatches: exact match only, any of the listed tokens, empty tokens never match', () => {
  assert.equal(tokenMatches('abc', ['abc']), true);
  assert.equal(tokenMatches('abc', ['x', 'abc']), true);
  assert.equal(tokenMatches('abcd', ['abc']), false);
  assert.equal(tokenMatches('ab', ['abc']), false);
  assert.equal(tokenMatches('', ['']), false);
  assert.equal(tokenMatches('', []), false);
  assert.equal(tokenMatches('ABC', ['abc']), false);
  assert.equal(tokenMatches('\u0000'.repeat(10000), ['abc']), false);
});

test('isLoopbackHost: 127/8, ::1, localhost and v4-mapped loopback need no token; everything else does', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1'])
    assert.equal(isLoopbackHost(h), true, h);
  for (const h of [
    '0.0.0.0',
    '::',
    '192.168.1.10',
    '10.0.0.1',
    'gateway.local',
    '128.0.0.1',
    '::ffff:10.0.0.1',
    '1.127.0.0',
  ])
    assert.equal(isLoopbackHost(h), false, h);
});

test('parseCookies: RFC 6265 pairs, first of a duplicate wins, quotes stripped, hostile input bounded', () => {
  assert.deepEqual(
    [...parseCookies('a=1; b=2;c="3"')],
    [
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ],
  );
  assert.equal(parseCookies('a=1; a=2').get('a'), '1');
  assert.equal(parseCookies(undefined).size, 0);
  assert.equal(parseCookies('=x; ;;; noequals').size, 0);
  assert.equal(parseCookies('a=' + 'x'.repeat(5000)).size, 0, 'oversized header ignored');
  assert.equal(parseCookies('a=1;'.repeat(40)).size, 0, 'too many pairs ignored');
  assert.equal(parseCookies(['a=1', 'b=2']).get('b'), '2');
  assert.equal(parseCookies('a="').get('a'), '"');
});

test('SessionKeeper: issued cookies verify; tampered, foreign, malformed and expired ones do not', () => {
  let now = 1_000_000;
  const k = new SessionKeeper(3600, () => now);
  const c = k.issue();
  assert.equal(k.valid(c), true);
  const [v, exp, nonce, mac] = c.split('.') as [string, string, string, string];
  assert.equal(k.valid(`${v}.${Number(exp) + 1}.${nonce}.${mac}`), false, 'expiry extended');
  assert.equal(k.valid(`${v}.${exp}.${nonce}x.${mac}`), false, 'nonce changed');
  assert.equal(k.valid(`${v}.${exp}.${nonce}.${mac.slice(0, -1)}`), false, 'short mac');
  assert.equal(k.valid(`v2.${exp}.${nonce}.${mac}`), false);
  assert.equal(k.valid(new SessionKeeper(3600, () => now).issue()), false, 'another process key');
  for (const bad of ['', 'v1', 'v1...', 'v1.x.y.z', `v1.-5.${nonce}.${mac}`, 'a'.repeat(500), `${c}.extra`])
    assert.equal(k.valid(bad), false, bad.slice(0, 20));
  assert.equal(k.valid(undefined), false);
  now += 3601;
  assert.equal(k.valid(c), false, 'expired');
  const set = k.setCookie(c, false);
  assert.match(set, /HttpOnly; SameSite=Strict$/);
  assert.match(k.setCookie(c, true), /; Secure$/);
  assert.match(SessionKeeper.clearCookie(), /Max-Age=0/);
});
