// Hostile datagrams never crash the CoAP server; /mgmt/health answers normally afterwards.
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { coapClient, READ, startGateway, type Harness } from './coap-harness.js';

describe('CoAP server under hostile datagrams', () => {
  let h: Harness;
  before(async () => {
    // A generous rate limit so the burst reaches the parser instead of being rate-limited away.
    h = await startGateway(
      '',
      (d) =>
        `version: 1\ngateway: { id: gw-hostile, data_dir: ${d}, log_level: silent }\nbroker: { enabled: false }\nmetrics: { enabled: false }\n` +
        `coap: { host: 127.0.0.1, port: 0, rate_limit: { requests_per_s: 100000, burst: 100000 } }\nmgmt: { read_token: ${READ}, admin_token: admin-${READ} }\n`,
    );
  });
  after(async () => {
    await h?.close();
  });

  it('survives truncated, malformed, oversized and random packets, then serves /mgmt/health', async () => {
    const sock = createSocket('udp4');
    const send = (b: Buffer) => new Promise<void>((r) => sock.send(b, h.port, '127.0.0.1', () => r()));
    const cases: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from([0x40]), // truncated header
      Buffer.from([0x40, 0x01, 0x00]),
      Buffer.from([0x48, 0x01, 0x00, 0x01, 0xaa]), // TKL 8 but 1 token byte
      Buffer.from([0x4f, 0x01, 0x00, 0x01]), // TKL 15 (reserved)
      Buffer.from([0x40, 0x01, 0x00, 0x01, 0xf1, 0x00]), // option delta nibble 15
      Buffer.from([0x40, 0x01, 0x00, 0x01, 0xd1]), // delta 13 without its extension byte
      Buffer.from([0x40, 0x01, 0x00, 0x01, 0xe1, 0xff]), // delta 14 with one of two bytes
      Buffer.from([0x40, 0x01, 0x00, 0x01, 0xbd, 0x20, 0x61]), // Uri-Path length 13+32 past the end
      Buffer.from([0x40, 0x01, 0x00, 0x01, 0xff]), // payload marker, empty payload
      Buffer.from([0x80, 0x01, 0x00, 0x01]), // version 2
      Buffer.from([0x40, 0x00, 0x00, 0x01, 0x61]), // empty message with content
      Buffer.from([0x40, 0x02, 0x00, 0x01, 0xd1, 0x0e, 0xff]), // Block1 SZX 7 (reserved)
      Buffer.from([0x40, 0x02, 0x00, 0x01, 0xd3, 0x0e, 0xff, 0xff, 0xfe, 0xff, 0x61]), // Block1 NUM huge
      Buffer.concat([
        Buffer.from([0x40, 0x02, 0x00, 0x02, 0xb7]),
        Buffer.from('sensors'),
        Buffer.from([0xff]),
        randomBytes(60000),
      ]), // oversized
      Buffer.concat([
        Buffer.from([0x50, 0x02, 0x00, 0x03, 0xb7]),
        Buffer.from('sensors'),
        Buffer.from([0x03]),
        Buffer.from('abc'),
        Buffer.from([0xff]),
        randomBytes(900),
      ]), // garbage body
      Buffer.from([0x60, 0x45, 0x00, 0x04]), // an unsolicited ACK response
      Buffer.from([0x70, 0x00, 0x00, 0x05]), // RST for nothing
    ];
    for (const c of cases) await send(c);
    // A burst of random packets, half with a valid-looking header so they reach option parsing.
    for (let i = 0; i < 5000; i++) {
      const b = randomBytes(1 + (i % 200));
      if (i % 2 === 0 && b.length >= 4) b[0] = 0x40 | (b[0]! & 0x3f & 0x37);
      await send(b);
    }
    sock.close();
    const health = await coapClient(['-m', 'get', h.url(`/mgmt/health?token=${READ}`)]);
    assert.equal(health.stderr, '');
    assert.equal((JSON.parse(health.stdout) as { ok: boolean }).ok, true);
    const metrics = await h.gateway.context.metrics.getSingleMetricAsString('edge_gateway_coap_dropped_total');
    assert.match(metrics, /reason="malformed"/);
  });

  it('a request body over max_payload_bytes gets 4.13', async () => {
    const big = 'x'.repeat(70000);
    const r = await coapClient([
      '-m',
      'post',
      '-t',
      '50',
      '-b',
      '1024',
      '-e',
      `{"v":"${big}"}`,
      h.url('/sensors/too-big'),
    ]);
    assert.match(r.stderr, /4\.13/);
  });
});
