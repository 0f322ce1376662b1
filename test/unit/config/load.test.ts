import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfigFile, parseConfig, redactSecrets } from '../../../src/config/load.js';

const fixture = (name: string) => new URL(`../../../../test/fixtures/config/${name}`, import.meta.url).pathname;
const defaultConfig = new URL('../../../../config/gateway.yaml', import.meta.url).pathname;

function issuesOf(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('expected a ConfigError');
}

test('the embedded default config is valid', () => {
  const c = loadConfigFile(defaultConfig);
  assert.equal(c.version, 1);
  assert.equal(c.metrics.port, 9464);
});

test('a minimal file gets every default and is frozen', () => {
  const c = parseConfig('version: 1\n');
  assert.equal(c.gateway.id, 'gw-1');
  assert.equal(c.gateway.durability, 'normal');
  assert.equal(c.broker.port, 1883);
  assert.equal(c.coap.port, 5683);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.broker) && Object.isFrozen(c.gateway));
  assert.throws(() => {
    (c.gateway as { id: string }).id = 'x';
  }, TypeError);
});

test('every error is reported at once with its key path and YAML line', () => {
  const issues = issuesOf(() => loadConfigFile(fixture('broken-many.yaml')));
  const byPath = new Map(issues.map((i) => [i.path, i]));
  const expect: [string, number, RegExp][] = [
    ['gateway.id', 3, /pattern/],
    ['gateway.log_levl', 4, /unknown key "log_levl"/],
    ['gateway.durability', 5, /one of "normal", "full"/],
    ['broker.port', 7, /<= 65535/],
    ['broker.tls.enabled', 9, /boolean/],
    ['metrics.port', 12, />= 0/],
    ['uplink_typo', 13, /unknown key/],
  ];
  for (const [path, line, msg] of expect) {
    const i = byPath.get(path);
    assert.ok(i, `missing issue for ${path}; got ${JSON.stringify(issues)}`);
    assert.equal(i.line, line, `line of ${path}`);
    assert.match(i.message, msg);
  }
  assert.equal(issues.length, expect.length, JSON.stringify(issues));
});

test('YAML syntax errors carry a line', () => {
  const issues = issuesOf(() => loadConfigFile(fixture('broken-syntax.yaml')));
  assert.ok(issues.length >= 1);
  assert.ok(issues[0]!.line === 3 || issues[0]!.line === 4, String(issues[0]!.line));
});

test('an unknown config version is refused', () => {
  const issues = issuesOf(() => loadConfigFile(fixture('broken-version.yaml')));
  assert.equal(issues[0]!.path, 'version');
  assert.equal(issues[0]!.line, 1);
});

test('secrets come from the environment and from files; missing ones are errors with lines', () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-cfg-'));
  try {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'file-secret\n');
    const text = `version: 1\nmgmt:\n  admin_token: !env EGW_T_ADMIN\n  read_token: !file ${tokenFile}\n`;
    const c = parseConfig(text, 'x', { EGW_T_ADMIN: 'env-secret' });
    assert.equal(c.mgmt.admin_token, 'env-secret');
    assert.equal(c.mgmt.read_token, 'file-secret');
    const red = redactSecrets(c) as { mgmt: Record<string, string>; gateway: { id: string } };
    assert.equal(red.mgmt['admin_token'], '[redacted]');
    assert.equal(red.mgmt['read_token'], '[redacted]');
    assert.equal(red.gateway.id, 'gw-1');
    assert.ok(!JSON.stringify(red).includes('secret'));

    const issues = issuesOf(() => loadConfigFile(fixture('broken-secret.yaml'), {}));
    assert.equal(issues.length, 2);
    assert.match(issues[0]!.message, /EGW_TEST_UNSET_VARIABLE is not set/);
    assert.equal(issues[0]!.line, 3);
    assert.match(issues[1]!.message, /cannot read secret file/);
    assert.equal(issues[1]!.line, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile YAML: alias bombs, duplicate keys, non-mapping documents and huge input are refused cleanly', () => {
  const bomb = ['version: 1', 'a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 0; i < 8; i++)
    bomb.push(
      `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`,
    );
  assert.throws(
    () => parseConfig(bomb.join('\n')),
    (e: unknown) => e instanceof Error,
  );
  issuesOf(() => parseConfig('version: 1\nversion: 1\n'));
  issuesOf(() => parseConfig('- 1\n- 2\n'));
  issuesOf(() => parseConfig('just a string'));
  issuesOf(() => parseConfig(`version: 1\ngateway:\n  id: ${'x'.repeat(100000)}\n`));
});

test('the published JSON Schema is in sync with the TypeBox schema', async () => {
  const { schemaJson } = await import('../../../scripts/gen-config-schema.js');
  const published = readFileSync(new URL('../../../../config/gateway.schema.json', import.meta.url), 'utf8');
  assert.equal(published, schemaJson(), 'run `npm run build` to regenerate config/gateway.schema.json');
});

test('the board examples (Raspberry Pi, Jetson) are valid once their secrets exist', () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-ex-'));
  try {
    writeFileSync(join(dir, 'read-token'), 'r'.repeat(32));
    writeFileSync(join(dir, 'admin-token'), 'a'.repeat(32));
    for (const name of ['raspberry-pi.yaml', 'jetson.yaml']) {
      const text = readFileSync(new URL(`../../../../config/examples/${name}`, import.meta.url), 'utf8');
      const c = parseConfig(text.replaceAll('!file /etc/edge-gateway/', `!file ${dir}/`), name, {
        EGW_UPLINK_PASSWORD: 'pw',
      });
      assert.equal(c.gateway.data_dir, '/var/lib/edge-gateway', name);
      assert.ok(c.drivers.length > 0, name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing secret does not hide the schema errors: all are reported at once', () => {
  const issues = issuesOf(() =>
    parseConfig('version: 1\nmgmt:\n  admin_token: !env EGW_T_NOPE\nbroker:\n  port: x\n', 'x', {}),
  );
  assert.deepEqual(
    issues.map((i) => i.line),
    [3, 5],
  );
  assert.match(issues[1]!.message, /integer/);
});

test('a missing secret names its key path, also inside a list and a flow mapping, not (root)', () => {
  const text =
    'version: 1\nuplink:\n  username: u\n  password: !env EGW_TEST_NOT_SET_ANYWHERE\ndrivers:\n  - type: coap\n    id: t\n    url: coaps://127.0.0.1/x\n    psk: { identity: a, key: !file /nonexistent/psk }\n';
  const issues = issuesOf(() => parseConfig(text, 'g.yaml', {}));
  assert.deepEqual(
    issues.map((i) => `${i.path} ${i.line}`),
    ['uplink.password 4', 'drivers[0].psk.key 9'],
  );
  assert.match(issues[0]!.message, /EGW_TEST_NOT_SET_ANYWHERE is not set \(EGW_CONFIG_SECRET\)/);
});
