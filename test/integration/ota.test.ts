import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Value } from '@sinclair/typebox/value';
import { OtaClient } from '../../src/ota/client.js';
import { OtaConfigSchema, type OtaConfig } from '../../src/ota/config.js';
import { linkedVersion, pointAt, readTrial } from '../../src/ota/releases.js';

const log = pino({ level: 'silent' });

interface Fixture {
  root: string;
  data: string;
  channel: string;
  url: string;
  requests: string[];
  keyFile: string;
  publicKey: string;
}

/** A board (A/B root with 0.1.0 current), a signing key, a channel served over HTTP. */
async function fixture(t: { after(fn: () => void | Promise<void>): void }): Promise<Fixture> {
  const base = mkdtempSync(join(tmpdir(), 'egw-ota-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const root = join(base, 'opt');
  mkdirSync(join(root, 'releases', '0.1.0', 'dist', 'src'), { recursive: true });
  pointAt(root, 'current', '0.1.0');
  const channel = join(base, 'channel');
  mkdirSync(channel);
  const keygen = spawnSync(process.execPath, ['dist/scripts/ota-keygen.js', join(base, 'release')], {
    encoding: 'utf8',
  });
  assert.equal(keygen.status, 0, keygen.stderr);
  const keyFile = join(base, 'release.key');
  const publicKey = (JSON.parse(readFileSync(keyFile, 'utf8')) as { publicKey: string }).publicKey;
  const requests: string[] = [];
  const srv = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    const file = join(channel, (req.url ?? '/').slice(1));
    if (!existsSync(file) || file.includes('..')) {
      res.writeHead(404);
      res.end();
      return;
    }
    const body = readFileSync(file);
    res.writeHead(200, { 'content-length': body.length, etag: `"${body.length}"` });
    res.end(body);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/manifest.json`;
  return { root, data: join(base, 'data'), channel, url, requests, keyFile, publicKey };
}

/** Packs a tiny release with the project's own script. */
function pack(f: Fixture, version: string, extra: string[] = []): void {
  const src = mkdtempSync(join(tmpdir(), 'egw-rel-'));
  mkdirSync(join(src, 'dist', 'src'), { recursive: true });
  writeFileSync(join(src, 'package.json'), JSON.stringify({ name: 'edge-gateway', version }));
  writeFileSync(join(src, 'dist', 'src', 'main.js'), `console.log('edge-gateway ${version}')\n`);
  const res = spawnSync(
    process.execPath,
    ['dist/scripts/ota-pack.js', '--key', f.keyFile, '--out', f.channel, '--from', src, ...extra],
    {
      encoding: 'utf8',
    },
  );
  rmSync(src, { recursive: true, force: true });
  assert.equal(res.status, 0, res.stderr);
}

function client(f: Fixture, version: string, over: Partial<OtaConfig> = {}, health = { ok: true }) {
  const restarts: string[] = [];
  const config = {
    ...(Value.Default(OtaConfigSchema, {}) as OtaConfig),
    channel_url: f.url,
    trusted_keys: [f.publicKey],
    ...over,
  };
  const c = new OtaClient({
    config,
    dataDir: f.data,
    gatewayId: 'gw-1',
    version,
    log,
    health: () => health,
    uplinkOnline: () => null,
    requestRestart: (r) => restarts.push(r),
    installRoot: f.root,
  });
  return { c, restarts };
}

test('a good update: verified, downloaded, unpacked, activated on trial, then committed after its health window', async (t) => {
  const f = await fixture(t);
  pack(f, '0.2.0');
  const old = client(f, '0.1.0');
  await old.c.start();
  assert.deepEqual(await old.c.check(), { version: '0.2.0', applicable: true, reason: null });
  const v = await old.c.apply();
  await new Promise((r) => setTimeout(r, 400)); // the restart is requested after the answer
  await old.c.stop();
  assert.equal(v.phase, 'activating');
  assert.equal(v.lwm2m.state, 3);
  assert.equal(linkedVersion(f.root, 'current'), '0.2.0');
  assert.equal(linkedVersion(f.root, 'previous'), '0.1.0');
  assert.equal(readTrial(f.root)!.version, '0.2.0');
  assert.equal(old.restarts.length, 1);
  assert.match(readFileSync(join(f.root, 'releases/0.2.0/dist/src/main.js'), 'utf8'), /0\.2\.0/);

  // systemd starts the new release (the trial script counted the start).
  spawnSync('sh', ['systemd/edge-gateway-trial', f.root]);
  const fresh = client(f, '0.2.0', { health_window_s: 1 });
  await fresh.c.start();
  assert.equal(fresh.c.view().phase, 'trial');
  await new Promise((r) => setTimeout(r, 2600));
  await fresh.c.stop();
  assert.equal(fresh.c.view().phase, 'committed');
  assert.equal(fresh.c.view().lwm2m.result, 1);
  assert.equal(readTrial(f.root), null);
  assert.equal(fresh.restarts.length, 0);
});

test('refusals leave the running release untouched: bad signature before any bundle byte, flipped byte, older version, other arch', async (t) => {
  const f = await fixture(t);
  pack(f, '0.2.0');
  // Unknown key: only the manifest is fetched.
  const stranger = client(f, '0.1.0', { trusted_keys: ['A'.repeat(43) + '='] });
  const v1 = await stranger.c.apply();
  assert.equal(v1.phase, 'failed');
  assert.equal(v1.result, 'integrity_failure');
  assert.deepEqual(f.requests, ['GET /manifest.json']);

  // One flipped byte in the bundle: refused by the hash, nothing unpacked.
  const env = JSON.parse(readFileSync(join(f.channel, 'manifest.json'), 'utf8')) as { manifest: string };
  const bundleName = (JSON.parse(env.manifest) as { url: string }).url;
  const bytes = readFileSync(join(f.channel, bundleName));
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  writeFileSync(join(f.channel, bundleName), bytes);
  const flipped = client(f, '0.1.0');
  const v2 = await flipped.c.apply();
  assert.equal(v2.phase, 'failed');
  assert.equal(v2.result, 'integrity_failure');
  assert.equal(existsSync(join(f.root, 'releases', '0.2.0')), false);

  // A validly signed older (replayed) manifest.
  pack(f, '0.0.9');
  const replay = client(f, '0.1.0');
  const out = await replay.c.check();
  assert.equal(out.applicable, false);
  assert.match(out.reason!, /not newer/);
  const v4 = await replay.c.apply();
  assert.match(v4.lastCheck!.reason!, /not newer/, 'apply does nothing with it');
  assert.equal(existsSync(join(f.root, 'releases', '0.0.9')), false);
  assert.equal(linkedVersion(f.root, 'current'), '0.1.0');

  // Not enough disk: refused before the bundle is fetched.
  pack(f, '0.3.0');
  f.requests.length = 0;
  const full = new OtaClient({
    config: { ...(Value.Default(OtaConfigSchema, {}) as OtaConfig), channel_url: f.url, trusted_keys: [f.publicKey] },
    dataDir: f.data,
    gatewayId: 'gw-1',
    version: '0.1.0',
    log,
    health: () => ({ ok: true }),
    uplinkOnline: () => null,
    requestRestart: () => undefined,
    installRoot: f.root,
    freeBytes: () => 1000,
  });
  const v3 = await full.apply();
  assert.equal(v3.result, 'not_enough_space');
  assert.deepEqual(f.requests, ['GET /manifest.json']);
  assert.equal(linkedVersion(f.root, 'current'), '0.1.0');
});

test('a rollback by the trial script is reported, and the same manifest is not retried', async (t) => {
  const f = await fixture(t);
  pack(f, '0.2.0');
  const a = client(f, '0.1.0');
  await a.c.apply();
  // The new release crashes at every start: the trial script counts, then swaps back.
  for (let i = 0; i < 4; i++) spawnSync('sh', ['systemd/edge-gateway-trial', f.root]);
  assert.equal(linkedVersion(f.root, 'current'), '0.1.0');
  const back = client(f, '0.1.0');
  await back.c.start();
  const v = back.c.view();
  await back.c.stop();
  assert.equal(v.phase, 'rolled_back');
  assert.match(v.reason!, /rolled back to 0\.1\.0: trial_starts/);
  const again = await back.c.check();
  assert.equal(again.applicable, false);
  assert.match(again.reason!, /was rolled back here/);
  // A new manifest (same version re-signed with other notes) is a new decision.
  pack(f, '0.2.0', ['--notes', 'fixed']);
  assert.equal((await back.c.check()).applicable, true);
});

test('a release that is up but unhealthy through its window rolls itself back and asks for a restart', async (t) => {
  const f = await fixture(t);
  pack(f, '0.2.0');
  await client(f, '0.1.0').c.apply();
  spawnSync('sh', ['systemd/edge-gateway-trial', f.root]);
  const sick = client(f, '0.2.0', { health_window_s: 1 }, { ok: false });
  await sick.c.start();
  await new Promise((r) => setTimeout(r, 2600));
  await sick.c.stop();
  assert.equal(linkedVersion(f.root, 'current'), '0.1.0');
  assert.equal(sick.restarts.length, 1);
  const back = client(f, '0.1.0');
  await back.c.start();
  await back.c.stop();
  assert.match(back.c.view().reason!, /health_check/);
});

test('a kill after unpacking but before the switch settles as failed on the old release', async (t) => {
  const f = await fixture(t);
  mkdirSync(f.data, { recursive: true });
  writeFileSync(
    join(f.data, 'ota-state.json'),
    JSON.stringify({ phase: 'staging', version: '0.2.0', from: '0.1.0', rejected: [] }),
  );
  const c = client(f, '0.1.0');
  await c.c.start();
  await c.c.stop();
  assert.equal(c.c.view().phase, 'failed');
  assert.match(c.c.view().reason!, /interrupted while staging/);
  // A truncated state file (impossible with durable writes, but a hand edit) starts from idle.
  writeFileSync(join(f.data, 'ota-state.json'), '{"phase":');
  const d = client(f, '0.1.0');
  assert.equal(d.c.view().phase, 'idle');
});

test('a signed manifest of the running version is refused even with allow_downgrade (it would replace the running release)', async (t) => {
  const f = await fixture(t);
  pack(f, '0.1.0', ['--allow-downgrade']);
  const c = client(f, '0.1.0');
  const out = await c.c.check();
  assert.equal(out.applicable, false);
  assert.match(out.reason!, /is the running release/);
  await c.c.apply();
  assert.equal(linkedVersion(f.root, 'current'), '0.1.0');
  assert.ok(existsSync(join(f.root, 'releases', '0.1.0', 'dist', 'src')), 'the running release untouched');
});
