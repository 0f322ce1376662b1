import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Authenticator, type ConnectInfo } from '../../../src/broker/auth.js';
import { canPublish, canReceive, canSubscribe } from '../../../src/broker/acl.js';
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
  emptyClientId: false,
  clean: true,
  protocolVersion: 4,
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

test('authenticated client ids must be device ids (rc 2); a keepalive over the limit is refused (rc 2)', async () => {
  const a = new Authenticator(await config());
  const bad = await a.authenticate(connect({ username: 'dev', password: Buffer.from('pw'), clientId: 'a/b' }));
  assert.ok(!bad.ok && bad.returnCode === 2 && bad.reason === 'client_id');
  for (const keepalive of [601, 65535]) {
    const r = await a.authenticate(connect({ remoteAddress: '127.0.0.1', keepalive }));
    assert.ok(!r.ok && r.returnCode === 2 && r.reason === 'keepalive', String(keepalive));
  }
  for (const keepalive of [1, 600])
    assert.ok((await a.authenticate(connect({ remoteAddress: '127.0.0.1', keepalive }))).ok);
  const nolimit = new Authenticator(await config({ keepalive_max_s: 0 }));
  assert.ok((await nolimit.authenticate(connect({ remoteAddress: '127.0.0.1', keepalive: 65535 }))).ok);
});

test('keepalive 0 (MQTT keepalive off, §3.1.2.10) is accepted by default; allow_keepalive_zero: false refuses it (rc 2)', async () => {
  const a = new Authenticator(await config());
  assert.ok((await a.authenticate(connect({ remoteAddress: '127.0.0.1', keepalive: 0 }))).ok);
  assert.ok((await a.authenticate(connect({ username: 'dev', password: Buffer.from('pw'), keepalive: 0 }))).ok);
  const strict = new Authenticator(await config({ allow_keepalive_zero: false }));
  const r = await strict.authenticate(connect({ remoteAddress: '127.0.0.1', keepalive: 0 }));
  assert.ok(!r.ok && r.returnCode === 2 && r.reason === 'keepalive');
  assert.ok((await strict.authenticate(connect({ remoteAddress: '127.0.0.1', keepalive: 1 }))).ok);
});

test('[MQTT-3.1.3-8] an empty client id needs CleanSession=1 (else rc 2); MQTT 3.1 needs an id', async () => {
  const a = new Authenticator(await config());
  const local = { remoteAddress: '127.0.0.1', clientId: 'aedes_generated', emptyClientId: true };
  const persistent = await a.authenticate(connect({ ...local, clean: false }));
  assert.ok(!persistent.ok && persistent.returnCode === 2 && persistent.reason === 'client_id');
  assert.ok((await a.authenticate(connect({ ...local, clean: true }))).ok);
  const v31 = await a.authenticate(connect({ ...local, clean: true, protocolVersion: 3 }));
  assert.ok(!v31.ok && v31.returnCode === 2);
  // Checked before the credentials: a device with good credentials gets rc 2 too.
  const dev = await a.authenticate(connect({ ...local, remoteAddress: '10.0.0.9', username: 'dev', clean: false }));
  assert.ok(!dev.ok && dev.returnCode === 2);
  assert.ok((await a.authenticate(connect({ remoteAddress: '127.0.0.1', clean: false }))).ok);
});

test('loopback_acl narrows what trusted loopback clients may do; absent, they have full access', async () => {
  const a = new Authenticator(
    await config({
      loopback_acl: [
        { topic: '#', access: 'readwrite' },
        { topic: 'test/nosubscribe', access: 'deny' },
      ],
    }),
  );
  const r = await a.authenticate(connect({ remoteAddress: '127.0.0.1' }));
  assert.ok(r.ok && r.identity.trusted && r.identity.acl !== null);
  assert.ok(canSubscribe(r.identity.acl, 'TopicA/#'));
  assert.ok(!canSubscribe(r.identity.acl, 'test/nosubscribe'));
  // A wider filter is granted; the denied topic is then filtered per delivery (docs/broker.md, ACL).
  assert.ok(canSubscribe(r.identity.acl, 'test/#') && !canReceive(r.identity.acl, 'test/nosubscribe'));
  assert.ok(canPublish(r.identity.acl, 'sensors/x/data'));
  // The ACL is for anonymous loopback clients only: remote users keep theirs.
  const dev = await a.authenticate(connect({ username: 'dev', password: Buffer.from('pw') }));
  assert.ok(dev.ok && canPublish(dev.identity.acl!, 'sensors/press-07/data') && !canPublish(dev.identity.acl!, 'x'));
});
