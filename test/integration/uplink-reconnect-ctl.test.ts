// `edge-gateway ctl uplink reconnect` / POST /mgmt/uplink/reconnect against a running gateway whose
// cloud comes back while its backoff still has seconds to go.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, coapClient, READ, startGateway } from './coap-harness.js';
import { Cloud, freePort } from './uplink-cloud.js';

const MAIN = new URL('../../src/main.js', import.meta.url).pathname;

function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, 'ctl', ...args],
      { env: { ...process.env, EDGE_GATEWAY_TOKEN: '' }, timeout: 20000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 99) : 0, stdout, stderr }),
    );
  });
}

test('ctl uplink reconnect: admin only; connects at once when the cloud is back, instead of waiting for the backoff', async (t) => {
  const cloudPort = await freePort();
  const h = await startGateway(
    `uplink:\n  url: mqtt://127.0.0.1:${cloudPort}\n  reconnect: { min_ms: 30000, max_ms: 60000, jitter: 0, probe_ms: 0 }\n`,
  );
  const cloud = new Cloud(cloudPort);
  t.after(async () => {
    await h.close();
    await cloud.close();
  });
  const host = `127.0.0.1:${h.port}`;
  const state = async () =>
    (
      JSON.parse((await ctl(['--host', host, '--token', READ, '--json', 'status'])).stdout) as {
        uplink: { state: string };
      }
    ).uplink.state;
  assert.equal(await state(), 'offline');

  const denied = await ctl(['--host', host, '--token', READ, 'uplink', 'reconnect']);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /^4\.03 /);

  await cloud.start(); // the next backoff attempt is ~30 s away
  const r = await ctl(['--host', host, '--token', ADMIN, '--json', 'uplink', 'reconnect']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { state: 'connecting' });
  const deadline = performance.now() + 5000;
  while ((await state()) !== 'online') {
    assert.ok(performance.now() < deadline, 'online within 5 s of the reconnect');
    await new Promise((res) => setTimeout(res, 100));
  }
  const again = await ctl(['--host', host, '--token', ADMIN, '--json', 'uplink', 'reconnect']);
  assert.deepEqual(JSON.parse(again.stdout), { state: 'online' });
});

test('POST /mgmt/uplink/reconnect: wrong token 4.01, GET 4.05, a body is ignored', async (t) => {
  const h = await startGateway(`uplink:\n  url: mqtt://127.0.0.1:${await freePort()}\n`);
  t.after(() => h.close());
  const wrong = await coapClient(['-m', 'post', `${h.url('/mgmt/uplink/reconnect')}?token=nope`]);
  assert.match(wrong.stdout + wrong.stderr, /4\.01/);
  const get = await coapClient(['-m', 'get', `${h.url('/mgmt/uplink/reconnect')}?token=${ADMIN}`]);
  assert.match(get.stdout + get.stderr, /4\.05/);
  // A hostile body (NUL bytes, invalid UTF-8, JSON that claims a state) is ignored: POST takes none.
  const body = join(h.dir, 'junk.bin');
  writeFileSync(body, Buffer.concat([Buffer.from([0, 0xff, 0xfe]), Buffer.from('{"state":"online"}'.repeat(40))]));
  const junk = await coapClient(['-m', 'post', '-f', body, `${h.url('/mgmt/uplink/reconnect')}?token=${ADMIN}`]);
  assert.match(junk.stdout, /"state":"(connecting|online)"/);
});
