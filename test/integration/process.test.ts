import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { GatewayProcess, MAIN, isolatedConfig, tempDir } from '../helpers/gateway-process.js';

const fixture = (name: string) => new URL(`../../../test/fixtures/config/${name}`, import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

function cli(...args: string[]) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 20000 });
}

test('--version and --help', () => {
  const v = cli('--version');
  assert.equal(v.status, 0);
  assert.equal(v.stdout.trim(), pkg.version);
  const h = cli('--help');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /check-config FILE/);
  assert.match(h.stdout, /--config FILE/);
});

test('check-config accepts the default config', () => {
  const r = cli('check-config', new URL('../../../config/gateway.yaml', import.meta.url).pathname);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /configuration is valid/);
});

test('check-config prints every error with its path and line and exits 1', () => {
  const r = cli('check-config', fixture('broken-many.yaml'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /Refusing to start because configuration .* is not valid \(7 errors\)/);
  for (const line of [
    /gateway\.id: must match pattern .* \(line 3\)/,
    /gateway\.log_levl: unknown key "log_levl" .* \(line 4\)/,
    /gateway\.durability: must be one of "normal", "full" \(line 5\)/,
    /broker\.port: must be <= 65535 \(line 7\)/,
    /broker\.tls\.enabled: must be boolean \(line 9\)/,
    /metrics\.port: must be >= 0 \(line 12\)/,
    /uplink_typo: unknown key .* \(line 13\)/,
  ]) {
    assert.match(r.stderr, line);
  }
  const missing = cli('check-config', '/nonexistent/egw.yaml');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cannot read config/);
});

test('an invalid config refuses to start before anything is opened', () => {
  const tmp = tempDir();
  try {
    const dataDir = join(tmp.dir, 'data');
    const cfg = tmp.file('bad.yaml', isolatedConfig(dataDir, 'nonsense_key: 1'));
    const r = cli('--config', cfg);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nonsense_key: unknown key/);
    assert.equal(existsSync(dataDir), false, 'the data dir must not be created for an invalid config');
  } finally {
    tmp.cleanup();
  }
});

test('SIGTERM stops the gateway gracefully and it exits 0 with its state closed', async () => {
  const tmp = tempDir();
  try {
    const dataDir = join(tmp.dir, 'data');
    const gw = GatewayProcess.start(tmp.file('gw.yaml', isolatedConfig(dataDir)));
    await gw.ready();
    assert.ok(existsSync(join(dataDir, 'gateway.db')));
    const code = await gw.stop('SIGTERM');
    assert.equal(code, 0);
    assert.ok(gw.logs.some((l) => l.msg === 'shutting down' && l['reason'] === 'SIGTERM'));
    assert.ok(gw.logs.some((l) => l.msg === 'stopped'));
    // A clean close checkpoints and removes the WAL.
    assert.equal(existsSync(join(dataDir, 'gateway.db-wal')), false);
  } finally {
    tmp.cleanup();
  }
});

test('a service that cannot start (port in use) makes the process exit non-zero, not half-alive', async () => {
  const tmp = tempDir();
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  try {
    const cfg = tmp.file('gw.yaml', isolatedConfig(join(tmp.dir, 'data')).replace('  port: 0', `  port: ${port}`));
    const gw = GatewayProcess.start(cfg);
    const code = await new Promise<number | null>((r) => gw.child.once('exit', (c) => r(c)));
    assert.equal(code, 1);
    assert.ok(gw.logs.some((l) => l.msg === 'gateway failed to start' && l['code'] === 'EGW_SERVICE_START'));
  } finally {
    blocker.close();
    tmp.cleanup();
  }
});

test('an uncaught exception is logged and the process exits non-zero so systemd restarts it', async () => {
  const tmp = tempDir();
  try {
    const cfg = tmp.file('gw.yaml', isolatedConfig(join(tmp.dir, 'data')));
    const boom = tmp.file('boom.mjs', "setTimeout(() => { throw new Error('boom from a test'); }, 1500);\n");
    const gw = new GatewayProcess(['--config', cfg], { NODE_OPTIONS: `--import ${boom}` });
    await gw.ready();
    const code = await new Promise<number | null>((r) => gw.child.once('exit', (c) => r(c)));
    assert.equal(code, 70);
    const fatal = gw.logs.find((l) => l.level === 'fatal');
    assert.ok(fatal, 'a fatal log line');
    assert.equal(fatal.msg, 'uncaught exception');
    assert.match(JSON.stringify(fatal['err']), /boom from a test/);
  } finally {
    tmp.cleanup();
  }
});
