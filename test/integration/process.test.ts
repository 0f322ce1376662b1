import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { GatewayProcess, MAIN, isolatedConfig, tempDir } from '../helpers/gateway-process.js';
import { makePki, type Pki } from './tls-certs.js';

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
    assert.ok(gw.logs.some((l) => l.msg === 'gateway failed to start' && l['code'] === 'EGW_PORT_IN_USE'));
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

test('a second gateway on the same data directory is refused before it opens anything, naming the dir and PID', async () => {
  const tmp = tempDir();
  let first: GatewayProcess | undefined;
  try {
    const dataDir = join(tmp.dir, 'data');
    first = GatewayProcess.start(tmp.file('a.yaml', isolatedConfig(dataDir)));
    await first.ready();
    // The second one has a broker on a port of its own: it must not even get to listen on it.
    const blockerCheck = createServer();
    await new Promise<void>((r) => blockerCheck.listen(0, '127.0.0.1', r));
    const port = (blockerCheck.address() as { port: number }).port;
    await new Promise<void>((r) => blockerCheck.close(() => r()));
    const second = GatewayProcess.start(
      tmp.file(
        'b.yaml',
        isolatedConfig(dataDir).replace('broker:\n  enabled: false', `broker:\n  host: 127.0.0.1\n  port: ${port}`),
      ),
    );
    const code = await new Promise<number | null>((r) => second.child.once('exit', (c) => r(c)));
    assert.equal(code, 1);
    const msg = second.stderr.join('\n');
    assert.match(
      msg,
      new RegExp(`data directory ${dataDir} is in use by another edge-gateway \\(PID ${first.child.pid}\\)`),
    );
    assert.ok(second.logs.some((l) => l.level === 'fatal' && l['code'] === 'EGW_DATA_DIR_LOCKED'));
    assert.ok(!second.logs.some((l) => /listening/.test(l.msg)), 'the second instance opened no listener');
    // The first one is untouched and still serves.
    assert.equal(first.child.exitCode, null);
    assert.equal(await first.stop('SIGTERM'), 0);
    assert.equal(existsSync(join(dataDir, 'gateway.pid')), false, 'a clean stop removes the PID file');
    // Now the directory is free.
    const third = GatewayProcess.start(tmp.file('c.yaml', isolatedConfig(dataDir)));
    await third.ready();
    assert.equal(await third.stop('SIGTERM'), 0);
  } finally {
    if (first) await first.stop('SIGKILL');
    tmp.cleanup();
  }
});

test('kill -9 leaves no stale lock: the next gateway on that data directory starts at once', async () => {
  const tmp = tempDir();
  try {
    const dataDir = join(tmp.dir, 'data');
    const cfg = tmp.file('gw.yaml', isolatedConfig(dataDir));
    const killed = GatewayProcess.start(cfg);
    await killed.ready();
    assert.equal(await killed.stop('SIGKILL'), 'SIGKILL');
    // The PID file of the dead process is still there; it must not matter.
    assert.equal(readFileSync(join(dataDir, 'gateway.pid'), 'utf8').trim(), String(killed.child.pid));
    const next = GatewayProcess.start(cfg);
    await next.ready();
    assert.equal(readFileSync(join(dataDir, 'gateway.pid'), 'utf8').trim(), String(next.child.pid));
    // ...and the lock is really held again by the new one.
    const refused = spawnSync(process.execPath, [MAIN, '--config', cfg], { encoding: 'utf8', timeout: 20000 });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, new RegExp(`in use by another edge-gateway \\(PID ${next.child.pid}\\)`));
    assert.equal(await next.stop('SIGTERM'), 0);
  } finally {
    tmp.cleanup();
  }
});

test('a lock file that is not a database (torn write) is replaced, not a reason to stay down', async () => {
  const tmp = tempDir();
  try {
    const dataDir = join(tmp.dir, 'data');
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, 'gateway.lock'), 'garbage that is not an SQLite header, as after a power cut');
    writeFileSync(join(dataDir, 'gateway.pid'), '999999999\n');
    const gw = GatewayProcess.start(tmp.file('gw.yaml', isolatedConfig(dataDir)));
    await gw.ready();
    assert.equal(await gw.stop('SIGTERM'), 0);
  } finally {
    tmp.cleanup();
  }
});

/** Each listener, with the config that enables only it on `port`, and the key its error must name. */
const LISTENERS: { key: string; yaml: (port: number, pki: () => Pki) => string; udp?: boolean }[] = [
  { key: 'broker.port', yaml: (p) => `broker:\n  host: 127.0.0.1\n  port: ${p}` },
  {
    key: 'broker.tls.port',
    yaml: (p, pki) =>
      `broker:\n  host: 127.0.0.1\n  port: 0\n  tls:\n    enabled: true\n    host: 127.0.0.1\n    port: ${p}\n` +
      `    cert_file: ${pki().serverCert}\n    key_file: ${pki().serverKey}`,
  },
  { key: 'coap.port', yaml: (p) => `coap:\n  host: 127.0.0.1\n  port: ${p}`, udp: true },
  { key: 'metrics.port', yaml: (p) => `metrics:\n  port: ${p}` },
];

for (const l of LISTENERS) {
  test(`a port already in use names its config key: ${l.key}`, async () => {
    const tmp = tempDir();
    let pki: Pki | undefined;
    const lazyPki = () => (pki ??= makePki());
    let close: () => void;
    let port: number;
    if (l.udp) {
      const sock = createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      port = sock.address().port;
      close = () => sock.close();
    } else {
      const srv = createServer();
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      port = (srv.address() as { port: number }).port;
      close = () => srv.close();
    }
    try {
      // The base config turns broker and coap off and metrics on port 0; the section under test
      // replaces its block (YAML forbids duplicate keys).
      const section = l.key.split('.')[0]!;
      const base = isolatedConfig(join(tmp.dir, 'data'))
        .split('\n')
        .filter((_, i, all) => {
          const owner = [...all.slice(0, i + 1)].reverse().find((x) => /^\S/.test(x));
          return !owner?.startsWith(`${section}:`);
        })
        .join('\n');
      const cfg = tmp.file('gw.yaml', `${base}\n${l.yaml(port, lazyPki)}\n`);
      const gw = GatewayProcess.start(cfg);
      const code = await new Promise<number | null>((r) => gw.child.once('exit', (c) => r(c)));
      assert.equal(code, 1, gw.stderr.join('\n'));
      const fatal = gw.logs.find((x) => x.msg === 'gateway failed to start');
      assert.ok(fatal, 'a fatal start line');
      assert.equal(fatal['code'], 'EGW_PORT_IN_USE');
      const err = JSON.stringify(fatal['err']);
      assert.match(err, new RegExp(`${l.key.replace(/\./g, '\\.')}: 127\\.0\\.0\\.1:${port} is already in use`));
    } finally {
      close();
      pki?.cleanup();
      tmp.cleanup();
    }
  });
}

test('a state database that cannot be opened is a coded start failure (exit 1), not a usage error', async () => {
  const tmp = tempDir();
  try {
    const dataDir = join(tmp.dir, 'data');
    mkdirSync(dataDir, { recursive: true });
    // Not an SQLite file: the store refuses it when the gateway is built.
    writeFileSync(join(dataDir, 'gateway.db'), Buffer.alloc(4096, 0x5a));
    const gw = GatewayProcess.start(tmp.file('bad-db.yaml', isolatedConfig(dataDir)));
    const code = await new Promise<number | null>((r) => gw.child.once('exit', (c) => r(c)));
    assert.equal(code, 1);
    const err = gw.stderr.join('\n');
    assert.doesNotMatch(err, /usage: edge-gateway/i, 'no usage text for a store failure');
    assert.match(err, /edge-gateway: /);
    assert.ok(
      gw.logs.some((l) => l.level === 'fatal' && typeof l['code'] === 'string' && l['code'].startsWith('EGW_STORE')),
      JSON.stringify(gw.logs.filter((l) => l.level === 'fatal')),
    );
    assert.equal(existsSync(join(dataDir, 'gateway.pid')), false, 'the data-dir lock is released');
  } finally {
    tmp.cleanup();
  }
});
