import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AllowList, parseCidr } from '../../../src/config/cidr.js';
import { ConfigError, parseConfig, type ConfigIssue } from '../../../src/config/load.js';
import { HOSTILE_CIDRS } from './hostile-cidrs.js';

describe('parseCidr', () => {
  it('accepts IPv4 and IPv6 blocks and single addresses', () => {
    for (const s of [
      '127.0.0.0/8',
      '0.0.0.0/0',
      '::/0',
      '::1',
      '::1/128',
      'fd00::/8',
      '2001:db8::/32',
      '10.1.2.3',
      '::ffff:0:0:0/128',
      '1:2:3:4:5:6:1.2.3.4',
    ])
      assert.ok(parseCidr(s).ok, s);
  });
  it('refuses hostile and mistyped strings with a reason', () => {
    for (const s of HOSTILE_CIDRS) {
      const r = parseCidr(s);
      assert.equal(r.ok, false, JSON.stringify(s));
      if (!r.ok) assert.ok(r.reason.length > 0);
    }
    const r = parseCidr('10.0.0.1/24');
    assert.ok(!r.ok && /did you mean 10\.0\.0\.0\/24/.test(r.reason));
    assert.equal(parseCidr(42).ok, false);
  });
});

describe('AllowList', () => {
  it('matches IPv4, IPv4-mapped and IPv6 peers by prefix', () => {
    const a = new AllowList(['127.0.0.0/8', '192.0.2.0/24', 'fd00::/8']);
    assert.ok(a.allows('127.4.5.6'));
    assert.ok(a.allows('::ffff:192.0.2.77'));
    assert.ok(a.allows('fd12:3456::1'));
    assert.ok(!a.allows('192.0.3.1'));
    assert.ok(!a.allows('::1'));
    assert.ok(!a.allows('fe80::1%eth0'));
    assert.ok(!a.allows('not an address'));
    assert.ok(new AllowList(['::/0']).allows('fe80::1%eth0'));
    assert.ok(!new AllowList([]).allows('127.0.0.1'));
  });
  it('keeps its verdict cache bounded', () => {
    const a = new AllowList(['10.0.0.0/8'], 16);
    for (let i = 0; i < 1000; i++) a.allows(`10.0.${i >> 8}.${i & 255}`);
    assert.ok((a as unknown as { cache: Map<string, boolean> }).cache.size <= 16);
  });
});

describe('allow_sources in the config', () => {
  it('defaults to loopback for CoAP and /mgmt, and CoAP binds loopback', () => {
    const c = parseConfig('version: 1\n');
    assert.equal(c.coap.host, '127.0.0.1');
    assert.deepEqual(c.coap.allow_sources, ['127.0.0.0/8', '::1/128']);
    assert.deepEqual(c.mgmt.allow_sources, ['127.0.0.0/8', '::1/128']);
  });
  it('every hostile block is an error with its path and line', () => {
    const yaml = [
      'version: 1',
      'coap:',
      '  allow_sources:',
      ...HOSTILE_CIDRS.map((s) => `    - ${JSON.stringify(s)}`),
      'mgmt:',
      '  allow_sources: [1.2.3.4/40]',
    ].join('\n');
    try {
      parseConfig(yaml, 'hostile.yaml');
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      for (let i = 0; i < HOSTILE_CIDRS.length; i++) {
        const issue: ConfigIssue | undefined = err.issues.find((x) => x.path === `coap.allow_sources[${i}]`);
        assert.ok(issue, `no error for ${JSON.stringify(HOSTILE_CIDRS[i])}`);
        assert.equal(issue.line, 4 + i);
      }
      const m = err.issues.find((x) => x.path === 'mgmt.allow_sources[0]');
      assert.match(m?.message ?? '', /prefix length must be 0-32/);
      assert.equal(m?.line, 5 + HOSTILE_CIDRS.length);
    }
  });
});
