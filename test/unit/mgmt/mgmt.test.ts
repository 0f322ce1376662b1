import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config/load.js';
import { changedPaths, redactedPaths, splitLive } from '../../../src/mgmt/apply.js';
import { keepStoredSecrets } from '../../../src/mgmt/keep-secrets.js';
import { writeFileAtomic } from '../../../src/mgmt/config-file.js';
import { FailureLimiter, newToken, resolveTokens, roleOf, TOKEN_FILE } from '../../../src/mgmt/tokens.js';
import { AuditLog } from '../../../src/mgmt/audit.js';
import { openDatabase } from '../../../src/store/db.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'egw-mgmt-'));

describe('tokens', () => {
  it('roles: admin, read, or nothing', () => {
    const t = { read: 'r-token', admin: 'a-token' };
    assert.equal(roleOf('a-token', t), 'admin');
    assert.equal(roleOf('r-token', t), 'read');
    assert.equal(roleOf('r-toke', t), undefined);
    assert.equal(roleOf('', t), undefined);
    assert.equal(roleOf(undefined, t), undefined);
  });
  it('generates missing tokens once into a 0600 file and announces them once', () => {
    const dir = tmp();
    try {
      const shown: string[] = [];
      const a = resolveTokens({}, dir, (s) => shown.push(s));
      assert.equal(a.source, 'generated');
      assert.equal(statSync(join(dir, TOKEN_FILE)).mode & 0o777, 0o600);
      const b = resolveTokens({}, dir, (s) => shown.push(s));
      assert.deepEqual([b.read, b.admin, b.source], [a.read, a.admin, 'file']);
      assert.equal(shown.length, 1);
      assert.ok(shown[0]!.includes(a.admin));
      const c = resolveTokens({ admin_token: 'from-config' }, dir, () => undefined);
      assert.deepEqual([c.read, c.admin], [a.read, 'from-config']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('FailureLimiter blocks after perMin failures and refills over the minute', () => {
    const f = new FailureLimiter(3);
    for (let i = 0; i < 3; i++) f.fail('ip', 0);
    assert.equal(f.blocked('ip', 0), true);
    assert.equal(f.retryAfterS('ip', 0), 20);
    assert.equal(f.blocked('other', 0), false);
    assert.equal(f.blocked('ip', 20_000), false);
  });
});

describe('config apply', () => {
  it('lists changed leaves and splits live from restart-required', () => {
    const a = { gateway: { log_level: 'info', id: 'a' }, coap: { port: 1 } };
    const b = { gateway: { log_level: 'debug', id: 'a' }, coap: { port: 2 } };
    const paths = changedPaths(a, b);
    assert.deepEqual(paths, ['gateway.log_level', 'coap.port']);
    assert.deepEqual(splitLive(paths), { live: ['gateway.log_level'], restart: ['coap.port'] });
  });
  it('finds "[redacted]" placeholders', () => {
    assert.deepEqual(
      redactedPaths({ mgmt: { admin_token: '[redacted]' }, drivers: [{ psk: { key: '[redacted]' } }] }),
      ['mgmt.admin_token', 'drivers[0].psk.key'],
    );
  });
  it('writeFileAtomic replaces the file, keeps a backup and the mode, leaves no temp file', () => {
    const dir = tmp();
    try {
      const f = join(dir, 'gateway.yaml');
      writeFileSync(f, 'old\n', { mode: 0o600 });
      const { backup } = writeFileAtomic(f, 'new\n');
      assert.equal(readFileSync(f, 'utf8'), 'new\n');
      assert.equal(readFileSync(backup!, 'utf8'), 'old\n');
      assert.equal(statSync(f).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(dir).sort(), ['gateway.yaml', 'gateway.yaml.bak']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('AuditLog', () => {
  it('records writes and returns the newest first, bounded', () => {
    const dir = tmp();
    const db = openDatabase({ path: join(dir, 'gw.db'), durability: 'normal' });
    try {
      const log = new AuditLog(db, 100, () => 42);
      for (let i = 0; i < 250; i++)
        log.record({ source: 's', method: 'PUT', resource: `/r${i}`, outcome: 'ok', code: '2.04', detail: null });
      const recent = log.recent(3);
      assert.deepEqual(
        recent.map((e) => e.resource),
        ['/r249', '/r248', '/r247'],
      );
      assert.equal(recent[0]!.ts, 42);
      assert.ok(log.recent(1000).length <= 150);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config set keeps stored secrets for "[redacted]" placeholders', () => {
  const stored = [
    'version: 1',
    'mgmt:',
    '  read_token: !env EGW_TEST_READ # from the environment',
    '  admin_token: literal-admin-secret',
    'drivers:',
    '  - { type: simulated, id: sim-1 }',
    '  - type: coap',
    '    id: tank-3',
    '    url: coaps://10.0.0.7/level',
    '    psk: { identity: gw-1, key: !file /etc/edge-gateway/tank3.psk }',
    '',
  ].join('\n');
  const env = { EGW_TEST_READ: 'env-read-secret' };

  it('puts back the stored node (literal, !env, !file) and matches list entries by id', () => {
    // The edited copy reorders the drivers and changes the log level; secrets come back redacted.
    const edited = [
      'version: 1',
      'gateway: { log_level: debug }',
      'mgmt:',
      '  read_token: "[redacted]"',
      '  admin_token: "[redacted]"',
      'drivers:',
      '  - type: coap',
      '    id: tank-3',
      '    url: coaps://10.0.0.7/level',
      '    psk: { identity: gw-1, key: "[redacted]" }',
      '  - { type: simulated, id: sim-1 }',
      '',
    ].join('\n');
    const r = keepStoredSecrets(edited, stored);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.kept.sort(), ['drivers[0].psk.key', 'mgmt.admin_token', 'mgmt.read_token']);
    assert.match(r.text, /read_token: !env EGW_TEST_READ/);
    assert.match(r.text, /admin_token: literal-admin-secret/);
    assert.match(r.text, /key: !file \/etc\/edge-gateway\/tank3\.psk/);
    assert.ok(!r.text.includes('[redacted]'));
    const back = parseConfig(r.text.replace(/!file [^ }]+/, 'file-psk'), 't', env);
    assert.equal(back.mgmt.read_token, 'env-read-secret');
    assert.equal(back.gateway.log_level, 'debug');
  });

  it('a placeholder with nothing stored (new driver id, no file) is refused with path and line', () => {
    const edited = [
      'version: 1',
      'drivers:',
      '  - type: coap',
      '    id: tank-9',
      '    url: coaps://10.0.0.9/level',
      '    psk: { identity: gw-1, key: "[redacted]" }',
      '',
    ].join('\n');
    const r = keepStoredSecrets(edited, stored);
    assert.ok(!r.ok);
    assert.equal(r.errors[0]!.path, 'drivers[0].psk.key');
    assert.equal(r.errors[0]!.line, 6);
    assert.ok(!keepStoredSecrets(edited, undefined).ok);
  });

  it('a JSON body (ctl config get --json) keeps them too', () => {
    const edited = JSON.stringify({
      version: 1,
      gateway: { log_level: 'debug' },
      mgmt: { read_token: '[redacted]', admin_token: '[redacted]' },
    });
    const r = keepStoredSecrets(edited, stored);
    assert.ok(r.ok);
    const back = parseConfig(r.text, 't', env);
    assert.deepEqual([back.mgmt.read_token, back.mgmt.admin_token], ['env-read-secret', 'literal-admin-secret']);
  });

  it('broker users are matched by username; a placeholder need not match the secret pattern', () => {
    const h1 = 'scrypt$16384$8$1$c2FsdDE=$aGFzaDE=';
    const h2 = 'scrypt$16384$8$1$c2FsdDI=$aGFzaDI=';
    const before = `version: 1\nbroker:\n  users:\n    - { username: ann, password_hash: "${h1}" }\n    - { username: bob, password_hash: "${h2}" }\n`;
    const edited =
      'version: 1\nbroker:\n  users:\n    - { username: bob, password_hash: "[redacted]" }\n    - { username: ann, password_hash: "[redacted]" }\n';
    const r = keepStoredSecrets(edited, before);
    assert.ok(r.ok);
    const users = parseConfig(r.text).broker.users;
    assert.deepEqual(
      users.map((u) => [u.username, u.password_hash]),
      [
        ['bob', h2],
        ['ann', h1],
      ],
    );
  });

  it('hostile bodies are left for the validator: broken YAML, an alias bomb, a scalar', () => {
    const bomb = [
      'a: &a ["x","x","x","x","x","x","x","x","x","x"]',
      ...'bcdefgh'.split('').map((c, i) => `${c}: &${c} [${new Array(10).fill(`*${'abcdefgh'[i]}`).join(',')}]`),
      'mgmt: { admin_token: "[redacted]" }',
    ].join('\n');
    for (const t of ['version: 1\nmgmt: {', bomb, '"[redacted]"', '- [redacted]'])
      assert.deepEqual(keepStoredSecrets(t, stored), { ok: true, text: t, kept: [] });
    assert.throws(() => parseConfig(bomb), /alias|Excessive|invalid/i);
  });

  it('a config without placeholders is written as sent', () => {
    const t = 'version: 1\nmgmt: { read_token: a-new-read-token }\n';
    assert.deepEqual(keepStoredSecrets(t, stored), { ok: true, text: t, kept: [] });
  });
});

it('generated management tokens never start with "-" (ctl --token would read one as an option)', () => {
  // 4,000 draws: with a plain base64url token about 62 would start with '-'.
  const tokens = Array.from({ length: 4000 }, () => newToken());
  assert.ok(tokens.every((t) => !t.startsWith('-')));
  assert.ok(
    tokens.every((t) => /^[A-Za-z0-9_-]{32}$/.test(t)),
    'still 24 random bytes, base64url',
  );
  assert.equal(new Set(tokens).size, tokens.length);
  // Every other first character still occurs (the redraw does not narrow the alphabet further).
  assert.equal(new Set(tokens.map((t) => t[0])).size, 63);
});
