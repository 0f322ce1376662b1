// DTLS-PSK round trip: the `coap` driver (node-coap-client / node-dtls-client) against libcoap's
// coap-server-openssl. Works when the server sends no PSK identity hint; with a hint the
// handshake fails (node-dtls-client 1.1.1 does not implement ServerKeyExchange, handshake type 12)
// and the failure stays inside the driver instead of crashing the gateway.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type Harness } from './coap-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Two consecutive free UDP ports (libcoap serves coaps on port+1). */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const a = createSocket('udp4');
    await new Promise<void>((r) => a.bind(0, '127.0.0.1', () => r()));
    const p = a.address().port;
    const b = createSocket('udp4');
    const ok = await new Promise<boolean>((r) => {
      b.once('error', () => r(false));
      b.bind(p + 1, '127.0.0.1', () => r(true));
    });
    a.close();
    if (ok) b.close();
    if (ok && p < 65535) return p;
  }
  throw new Error('no free UDP port pair');
}

function run(cmd: string, args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    const t = setTimeout(() => c.kill(), 10000);
    c.on('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

async function startLibcoapServer(port: number, hint: string): Promise<ChildProcess> {
  const srv = spawn('coap-server-openssl', ['-A', '127.0.0.1', '-p', String(port), '-k', 'sitePSK-0123', '-h', hint], {
    stdio: 'ignore',
  });
  await sleep(400);
  // Seed /example_data with a number over DTLS using libcoap's own client.
  const rc = await run('coap-client-openssl', [
    '-m',
    'put',
    '-e',
    '42.5',
    '-k',
    'sitePSK-0123',
    '-u',
    'gw-1',
    `coaps://127.0.0.1:${port + 1}/example_data`,
  ]);
  assert.equal(rc, 0, 'seeding /example_data over DTLS failed');
  return srv;
}

const driverYaml = (port: number) => `drivers:
  - type: coap
    id: dtls-dev
    url: coaps://127.0.0.1:${port + 1}/example_data
    interval_ms: 300
    timeout_ms: 2000
    value_name: level
    psk: { identity: gw-1, key: sitePSK-0123 }
    backoff: { initial_ms: 200, max_ms: 1000 }
`;

describe('coap driver over DTLS-PSK with libcoap coap-server-openssl', () => {
  const servers: ChildProcess[] = [];
  let h: Harness | undefined;
  after(async () => {
    await h?.close();
    for (const s of servers) s.kill();
  });

  it('reads a resource over DTLS-PSK when the server sends no identity hint', async () => {
    const port = await freePortPair();
    servers.push(await startLibcoapServer(port, ''));
    h = await startGateway(driverYaml(port));
    for (let i = 0; i < 100 && !h.gateway.context.latest.get('dtls-dev'); i++) await sleep(100);
    const r = h.gateway.context.latest.get('dtls-dev');
    assert.equal(r?.values['level'], 42.5);
    assert.equal(r?.source, 'coap-poll');
    await h.close();
    h = undefined;
  });

  it('with an identity hint the handshake fails (ServerKeyExchange unsupported); the gateway stays healthy', async () => {
    const port = await freePortPair();
    servers.push(await startLibcoapServer(port, 'CoAP'));
    h = await startGateway(driverYaml(port));
    const devices = h.gateway.context.devices;
    for (let i = 0; i < 100 && (devices.get('dtls-dev')?.errors ?? 0) < 2; i++) await sleep(100);
    assert.ok((devices.get('dtls-dev')?.errors ?? 0) >= 2, 'the driver reports the failed handshakes');
    assert.equal(h.gateway.context.latest.get('dtls-dev'), undefined);
    assert.equal(h.gateway.health().services['coap']?.ok, true);
  });
});
