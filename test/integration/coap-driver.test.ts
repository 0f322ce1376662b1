// The downstream `coap` driver against CoAP devices played by the test (node `coap` servers).
import { createSocket } from 'node:dgram';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import coap from 'coap';
import { startGateway, type Harness } from './coap-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, ms = 8000): Promise<void> {
  for (let t = 0; t < ms && !pred(); t += 50) await sleep(50);
  assert.ok(pred(), 'condition not reached in time');
}

/** A device: /temp answers a bare number (text/plain) per GET; /state observable JSON every 100 ms. */
async function startDevice(): Promise<{ port: number; gets: () => number; close(): void }> {
  let gets = 0;
  let n = 0;
  const timers: NodeJS.Timeout[] = [];
  const server = coap.createServer((req, res) => {
    if (req.url === '/temp') {
      gets++;
      res.setOption('Content-Format', 'text/plain');
      res.end(String(20 + gets / 10));
    } else if (req.url === '/state' && req.headers['Observe'] === 0) {
      res.setOption('Content-Format', 'application/json');
      const send = () => res.write(JSON.stringify({ values: { pressure: 1000 + n++, open: n % 2 === 0 } }));
      send();
      timers.push(setInterval(send, 100));
    } else {
      res.code = '4.04';
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const sock = server._sock as ReturnType<typeof createSocket>;
  return {
    port: sock.address().port,
    gets: () => gets,
    close: () => {
      for (const t of timers) clearInterval(t);
      server.close();
    },
  };
}

describe('coap driver (downstream devices)', () => {
  let h: Harness | undefined;
  let dev: Awaited<ReturnType<typeof startDevice>> | undefined;
  after(async () => {
    await h?.close();
    dev?.close();
  });

  it('polls one device and observes another; readings reach the pipeline, devices are online', async () => {
    dev = await startDevice();
    h = await startGateway(`drivers:
  - type: coap
    id: poll-1
    url: coap://127.0.0.1:${dev.port}/temp
    interval_ms: 150
    value_name: temperature
    unit: "°C"
  - type: coap
    id: obs-1
    url: coap://127.0.0.1:${dev.port}/state
    mode: observe
`);
    const latest = h.gateway.context.latest;
    await until(() => dev!.gets() >= 3 && latest.get('poll-1') !== undefined);
    const p = latest.get('poll-1')!;
    assert.equal(typeof p.values['temperature'], 'number');
    assert.equal(p.source, 'coap-poll');
    assert.deepEqual(p.units, { temperature: '°C' });
    const first = Number(latest.get('obs-1')?.values['pressure'] ?? -1);
    await until(() => Number(latest.get('obs-1')?.values['pressure'] ?? -1) >= first + 3);
    assert.equal(typeof latest.get('obs-1')!.values['open'], 'boolean');
    assert.equal(h.gateway.context.devices.get('poll-1')?.online, true);
    assert.equal(h.gateway.context.devices.get('obs-1')?.online, true);
  });

  it('an unreachable device is retried with backoff and reported offline, then recovers', async () => {
    // Reserve a free UDP port, then leave it closed: requests there go unanswered.
    const probe = createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
    const port = probe.address().port;
    probe.close();
    await h?.close();
    h = await startGateway(`drivers:
  - type: coap
    id: late-1
    url: coap://127.0.0.1:${port}/temp
    interval_ms: 100
    timeout_ms: 300
    backoff: { initial_ms: 100, max_ms: 400 }
`);
    const devices = h.gateway.context.devices;
    await until(() => (devices.get('late-1')?.errors ?? 0) >= 2);
    assert.equal(devices.get('late-1')?.online, false);
    // The device comes up on that port: the next retry reads it.
    const server = coap.createServer((_req, res) => res.end('7.5'));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    try {
      await until(() => h!.gateway.context.latest.get('late-1') !== undefined, 10000);
      assert.equal(h.gateway.context.latest.get('late-1')!.values['value'], 7.5);
      assert.equal(devices.get('late-1')?.online, true);
    } finally {
      server.close();
    }
  });
});
