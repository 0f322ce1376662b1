import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Authenticator, type ConnectInfo } from '../../../src/broker/auth.js';
import { canPublish } from '../../../src/broker/acl.js';
import { BrokerConfigSchema, type BrokerConfig } from '../../../src/broker/config.js';
import { hashPassword } from '../../../src/broker/password.js';
import { Value } from '@sinclair/typebox/value';

async function config(extra: Partial<BrokerConfig> = {}): Promise<BrokerConfig> {
  const base = Value.Default(BrokerConfigSchema, {}) as BrokerConfig;
  return {
    ...base,
    users: [
      { username: 'dev', password_hash: await hashPassword('pw', { N: 1024, r: 8, p: 1 }) },
      {
        username: 'ops',
        password_hash: await hashPassword('ops', { N: 1024, r: 8, p: 1 }),
        acl: [{ topic: '#', access: 'readwrite' }],
      },
      { username: 'cert-only' },
    ],
    ...extra,
  };
}
const connect = (c: Partial<ConnectInfo>): ConnectInfo => ({
  clientId: 'press-07',
  username: undefined,
  password: undefined,
  remoteAddress: '10.1.2.3',
  certCN: undefined,
  tls: false,
  keepalive: 60,
  ...c,
});

test('anonymous loopback clients are trusted; anonymous remote clients are refused (rc 5)', async () => {
  const a = new Authenticator(await config());
  for (const addr of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
    const r = await a.authenticate(connect({ remoteAddress: addr }));
    assert.ok(r.ok && r.identity.trusted && r.identity.acl === null, addr);
  }
  const r = await a.authenticate(connect({}));
  assert.ok(!r.ok && r.returnCode === 5 && r.reason === 'not_authorized');
  const off = new Authenticator(await config({ allow_anonymous_loopback: false }));
  assert.ok(!(await off.authenticate(connect({ remoteAddress: '127.0.0.1' }))).ok);
});

test('username/password: right password gets the default ACL; wrong or unknown gets rc 4', async () => {
  const a = new Authenticator(await config());
  const r = await a.authenticate(connect({ username: 'dev', password: Buffer.from('pw') }));
  assert.ok(r.ok && !r.identity.trusted);
  assert.ok(canPublish(r.identity.acl!, 'sensors/press-07/data'));
  assert.ok(!canPublish(r.identity.acl!, 'sensors/other/data'));
  const wrong: Partial<ConnectInfo>[] = [
    { username: 'dev', password: Buffer.from('PW') },
    { username: 'dev' },
    { username: 'nobody', password: Buffer.from('pw') },
    { username: 'cert-only', password: Buffer.from('') },
    // Credentials are checked on loopback too: no fallback to the anonymous trust.
    { username: 'dev', password: Buffer.from('nope'), remoteAddress: '127.0.0.1' },
  ];
  for (const c of wrong) {
    const bad = await a.authenticate(connect(c));
    assert.ok(!bad.ok && bad.returnCode === 4 && bad.reason === 'bad_credentials', JSON.stringify(c));
  }
});

test('the TLS listener trusts nobody anonymously, not even loopback (rc 5)', async () => {
  const a = new Authenticator(await config());
  for (const addr of ['127.0.0.1', '::1']) {
    const r = await a.authenticate(connect({ remoteAddress: addr, tls: true }));
    assert.ok(!r.ok && r.returnCode === 5 && r.reason === 'not_authorized', addr);
  }
  const cert = await a.authenticate(connect({ remoteAddress: '127.0.0.1', tls: true, certCN: 'cert-only' }));
  assert.ok(cert.ok && !cert.identity.trusted);
});

test('a user acl replaces the default ACL', async () => {
  const a = new Authenticator(await config());
  const r = await a.authenticate(connect({ username: 'ops', password: Buffer.from('ops'), clientId: 'dash' }));
  assert.ok(r.ok && canPublish(r.identity.acl!, 'commands/press-07'));
});

test('a verified certificate CN is the username; a different username is refused', async () => {
  const a = new Authenticator(await config());
  const r = await a.authenticate(connect({ certCN: 'cert-only' }));
  assert.ok(r.ok && r.identity.username === 'cert-only' && !r.identity.trusted);
  const bad = await a.authenticate(connect({ certCN: 'cert-only', username: 'ops', password: Buffer.from('ops') }));
  assert.ok(!bad.ok && bad.reason === 'certificate');
});

test('authenticated client ids must be device ids (rc 2); keepalive 0 or over the limit is refused (rc 2)', async () => {
  const a = new Authenticator(await config());
  const bad = await a.authenticate(connect({ username: 'dev', password: Buffer.from('pw'), clientId: 'a/b' }));
  assert.ok(!bad.ok && bad.returnCode === 2 && bad.reason === 'client_id');
  for (const keepalive of [0, 601]) {
    const r = await a.authenticate(connect({ remoteAddress: '127.0.0.1', keepalive }));
    assert.ok(!r.ok && r.returnCode === 2 && r.reason === 'keepalive', String(keepalive));
  }
  const nolimit = new Authenticator(await config({ keepalive_max_s: 0 }));
  assert.ok((await nolimit.authenticate(connect({ remoteAddress: '127.0.0.1', keepalive: 0 }))).ok);
});
