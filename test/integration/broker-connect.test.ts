import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { ErrorWithReasonCode } from 'mqtt';
import { tempDir } from '../helpers/gateway-process.js';
import { connect, run, startGateway } from './broker-harness.js';

/** CONNECT rules with real clients: keepalive 0 (MQTT 3.1.1 §3.1.2.10) and [MQTT-3.1.3-8]. */
const tmp = tempDir('egw-broker-connect-');
const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const s of stops) await s();
  tmp.cleanup();
});

async function gateway(name: string, extra = ''): Promise<{ url: string; port: number }> {
  const { gateway: gw, broker, url } = await startGateway(join(tmp.dir, name), extra);
  stops.push(() => gw.stop());
  return { url, port: broker.port! };
}

/** Raw CONNECT (MQTT 3.1.1, keepalive 30) → the CONNACK return code (§3.2.2.3). */
function connackCode(port: number, clientId: string, clean: boolean): Promise<number> {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([
    Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, clean ? 0x02 : 0x00, 0, 30, id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port }, () =>
      s.write(Buffer.concat([Buffer.from([0x10, body.length]), body])),
    );
    const timer = setTimeout(() => reject(new Error('no CONNACK within 5 s')), 5000);
    s.once('data', (d) => {
      clearTimeout(timer);
      s.destroy();
      if (d[0] !== 0x20) reject(new Error(`not a CONNACK: ${d.toString('hex')}`));
      else resolve(d[3]!);
    });
    s.once('error', reject);
  });
}

/** The kernel's timer on the broker's side of a connection (`ss -o`), e.g. "keepalive". */
async function serverTimer(brokerPort: number, clientPort: number): Promise<string> {
  const r = await run('ss', ['-tnoH', 'state', 'established', `( sport = :${brokerPort} and dport = :${clientPort} )`]);
  assert.equal(r.code, 0, r.stderr);
  return /timer:\((\w+)/.exec(r.stdout)?.[1] ?? 'none';
}

test('keepalive 0 is accepted by default, and the broker turns on TCP keepalive for that connection only', async () => {
  const { url, port } = await gateway('default');
  const zero = await connect(url, { clientId: 'ka-zero', keepalive: 0 });
  const thirty = await connect(url, { clientId: 'ka-thirty', keepalive: 30 });
  try {
    assert.equal(zero.connected, true);
    assert.equal(await serverTimer(port, (zero.stream as Socket).localPort!), 'keepalive');
    assert.notEqual(await serverTimer(port, (thirty.stream as Socket).localPort!), 'keepalive');
    // The connection works: a QoS 1 round trip.
    await zero.subscribeAsync('ka/#', { qos: 1 });
    const got = new Promise<string>((resolve) => zero.once('message', (_t, p) => resolve(p.toString())));
    await thirty.publishAsync('ka/x', 'hello', { qos: 1 });
    assert.equal(await got, 'hello');
  } finally {
    zero.end(true);
    thirty.end(true);
  }
});

test('allow_keepalive_zero: false refuses keepalive 0 with CONNACK 2; a keepalive over keepalive_max_s is refused too', async () => {
  const { url } = await gateway('strict', '  allow_keepalive_zero: false\n  keepalive_max_s: 120');
  for (const keepalive of [0, 121]) {
    await assert.rejects(
      connect(url, { clientId: `ka-${keepalive}`, keepalive }),
      (err: ErrorWithReasonCode) => err.code === 2,
      `keepalive ${keepalive}`,
    );
  }
  const ok = await connect(url, { clientId: 'ka-120', keepalive: 120 });
  ok.end(true);
});

test('[MQTT-3.1.3-8] an empty client id with CleanSession=0 gets CONNACK 2; with CleanSession=1 it is accepted', async () => {
  const { port } = await gateway('client-id');
  assert.equal(await connackCode(port, '', false), 2);
  assert.equal(await connackCode(port, '', true), 0);
  assert.equal(await connackCode(port, 'named', false), 0);
});
