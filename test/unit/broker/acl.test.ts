import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  canPublish,
  canReceive,
  canSubscribe,
  compileAcl,
  filterCovers,
  filterMatches,
} from '../../../src/broker/acl.js';

const L = (s: string) => s.split('/');
const DEFAULT = [
  { topic: 'sensors/{clientid}/#', access: 'write' as const },
  { topic: 'devices/{clientid}/#', access: 'write' as const },
  { topic: 'commands/{clientid}', access: 'read' as const },
];

test('filterMatches follows MQTT 3.1.1 §4.7 wildcards', () => {
  assert.ok(filterMatches(L('sport/#'), L('sport')));
  assert.ok(filterMatches(L('sport/#'), L('sport/tennis/player1')));
  assert.ok(filterMatches(L('sport/+/player1'), L('sport/tennis/player1')));
  assert.ok(filterMatches(L('+/+'), L('/finance')));
  assert.ok(!filterMatches(L('sport/+'), L('sport/tennis/player1')));
  assert.ok(!filterMatches(L('sport/tennis'), L('sport/tennis/x')));
  // [MQTT-4.7.2-1]
  assert.ok(!filterMatches(L('#'), L('$SYS/x')));
  assert.ok(!filterMatches(L('+/x'), L('$SYS/x')));
  assert.ok(filterMatches(L('$SYS/#'), L('$SYS/x')));
});

test('filterCovers: a rule covers a subscription only if every match of it is allowed', () => {
  assert.ok(filterCovers(L('a/#'), L('a/+/b')));
  assert.ok(filterCovers(L('a/#'), L('a/#')));
  assert.ok(filterCovers(L('a/+'), L('a/+')));
  assert.ok(filterCovers(L('a/+'), L('a/x')));
  assert.ok(!filterCovers(L('a/+'), L('a/#')));
  assert.ok(!filterCovers(L('a/x'), L('a/+')));
  assert.ok(!filterCovers(L('a/x'), L('a/#')));
  assert.ok(!filterCovers(L('#'), L('$SYS/#')));
});

test('default device ACL: own sensors/devices topics writable, own commands readable, nothing else', () => {
  const acl = compileAcl(DEFAULT, { username: 'u', clientid: 'press-07' });
  assert.ok(canPublish(acl, 'sensors/press-07/data'));
  assert.ok(canPublish(acl, 'devices/press-07/status'));
  assert.ok(!canPublish(acl, 'sensors/press-08/data'));
  assert.ok(!canPublish(acl, 'commands/press-07'));
  assert.ok(canSubscribe(acl, 'commands/press-07'));
  assert.ok(!canSubscribe(acl, 'commands/#'));
  assert.ok(!canSubscribe(acl, 'commands/+'));
  assert.ok(!canSubscribe(acl, 'sensors/press-07/data'));
});

test('a client id or username with / + # cannot widen a pattern rule: the rule is dropped', () => {
  for (const clientid of ['a/b', '+', '#', '']) {
    const acl = compileAcl(DEFAULT, { username: 'u', clientid });
    assert.equal(acl.write.length + acl.read.length, 0, clientid);
  }
  const acl = compileAcl([{ topic: 'users/{username}/#', access: 'readwrite' }], {
    username: undefined,
    clientid: 'x',
  });
  assert.equal(acl.write.length, 0);
});

test('deny wins over allow, for publish, subscribe and per-message delivery', () => {
  const acl = compileAcl(
    [
      { topic: 'site/#', access: 'readwrite' },
      { topic: 'site/secret/#', access: 'deny' },
    ],
    { username: 'ops', clientid: 'c1' },
  );
  assert.ok(canPublish(acl, 'site/a'));
  assert.ok(!canPublish(acl, 'site/secret/x'));
  assert.ok(canSubscribe(acl, 'site/#'));
  assert.ok(!canSubscribe(acl, 'site/secret/#'));
  assert.ok(canReceive(acl, 'site/a'));
  assert.ok(!canReceive(acl, 'site/secret/x'));
});

test('{username} substitution', () => {
  const acl = compileAcl([{ topic: 'users/{username}/{clientid}/#', access: 'write' }], {
    username: 'alice',
    clientid: 'dev1',
  });
  assert.ok(canPublish(acl, 'users/alice/dev1/x'));
  assert.ok(!canPublish(acl, 'users/bob/dev1/x'));
});
