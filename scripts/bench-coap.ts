// CoAP benchmark: confirmable POST readings/s with N concurrent clients (each keeps one request
// outstanding, RFC 7252 NSTART=1), against the gateway (filter + pipeline + outbox commit before
// 2.01) and, side by side, a bare `coap` library server that answers 2.01 at once (the reference:
// the cost of the library alone). Then /mgmt GET latency p50/p99.
// Usage: node dist/scripts/bench-coap.js [--clients 1,4,16] [--seconds 3] [--mgmt 2000]
import { createSocket, type Socket } from 'node:dgram';
import { parseArgs } from 'node:util';
import coap from 'coap';
import { generate, parse } from 'coap-packet';
import { READ, startGateway } from '../test/integration/coap-harness.js';

const { values: o } = parseArgs({
  options: {
    clients: { type: 'string', default: '1,4,16,64' },
    seconds: { type: 'string', default: '3' },
    mgmt: { type: 'string', default: '2000' },
  },
});
const clientCounts = o.clients.split(',').map(Number);
const seconds = Number(o.seconds);

/** One client: a UDP socket sending CON POSTs back to back; resolves with the 2.01 count. */
function client(port: number, path: string[], id: number, untilMs: number): Promise<{ ok: number; other: number }> {
  return new Promise((resolve) => {
    const sock: Socket = createSocket('udp4');
    let mid = (id * 7919) & 0xffff;
    let ok = 0;
    let other = 0;
    const body = Buffer.from(JSON.stringify({ temperature: 21.5, humidity: 40 }));
    const options = [
      ...path.map((p) => ({ name: 'Uri-Path', value: Buffer.from(p) })),
      { name: 'Content-Format', value: Buffer.from([50]) },
    ];
    let retry: NodeJS.Timeout | undefined;
    const sendNext = () => {
      if (performance.now() >= untilMs) {
        clearTimeout(retry);
        sock.close();
        return resolve({ ok, other });
      }
      mid = (mid + 1) & 0xffff;
      const pkt = generate({
        code: '0.02',
        confirmable: true,
        messageId: mid,
        token: Buffer.from([id, mid >> 8, mid & 0xff]),
        options: options as never,
        payload: body,
      });
      sock.send(pkt, port, '127.0.0.1');
      clearTimeout(retry);
      retry = setTimeout(sendNext, 2000); // lost: move on (counted as missing)
    };
    sock.on('message', (m) => {
      let p;
      try {
        p = parse(m);
      } catch {
        return;
      }
      if (p.code === '0.00') return; // empty ACK: the separate response follows
      if (p.confirmable)
        sock.send(
          generate({ code: '0.00', ack: true, messageId: p.messageId, token: Buffer.alloc(0) }),
          port,
          '127.0.0.1',
        );
      if (p.code === '2.01' || p.code === '2.04') ok++;
      else other++;
      sendNext();
    });
    sock.bind(0, '127.0.0.1', sendNext);
  });
}

async function run(port: number, path: (i: number) => string[], n: number): Promise<{ rate: number; other: number }> {
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: n }, (_, i) => client(port, path(i), i + 1, until)));
  const elapsed = (performance.now() - t0) / 1000;
  const ok = results.reduce((a, r) => a + r.ok, 0);
  return { rate: ok / elapsed, other: results.reduce((a, r) => a + r.other, 0) };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const h = await startGateway(
    '',
    (d) =>
      `version: 1\ngateway: { id: gw-bench, data_dir: ${d}, log_level: warn }\nbroker: { enabled: false }\nmetrics: { enabled: false }\n` +
      `coap: { host: 127.0.0.1, port: 0, rate_limit: { requests_per_s: 1000000, burst: 1000000 } }\nmgmt: { read_token: ${READ}, admin_token: admin-${READ} }\n`,
  );
  const ref = coap.createServer((_req, res) => {
    res.code = '2.01';
    res.end();
  });
  await new Promise<void>((r) => ref.listen(0, '127.0.0.1', () => r()));
  const refPort = (ref._sock as Socket).address().port;
  console.log(`CoAP confirmable POST, ${seconds} s per run, node ${process.version}, ${process.arch}`);
  console.log('clients | gateway readings/s (commit before 2.01) | bare coap library 2.01/s | gateway/bare');
  for (const n of clientCounts) {
    const g = await run(h.port, (i) => ['sensors', `bench-${i}`], n);
    const b = await run(refPort, () => ['sensors', 'x'], n);
    console.log(
      `${String(n).padStart(7)} | ${g.rate.toFixed(0).padStart(38)} | ${b.rate.toFixed(0).padStart(24)} | ${(g.rate / b.rate).toFixed(2)}${g.other ? ` (${g.other} non-2.01)` : ''}`,
    );
  }
  ref.close();

  // Management GET latency: one client, sequential requests (end to end over UDP).
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  for (const [k, resource] of ['health', 'status'].entries()) {
    const lat: number[] = [];
    for (let i = 0; i < Number(o.mgmt); i++) {
      // Distinct message ids per run: a repeated id would be answered from the duplicate cache.
      const mid = (i + k * 20000) & 0xffff;
      const pkt = generate({
        code: '0.01',
        confirmable: true,
        messageId: mid,
        token: Buffer.from([9 + k, mid >> 8, mid & 0xff]),
        options: [
          { name: 'Uri-Path', value: Buffer.from('mgmt') },
          { name: 'Uri-Path', value: Buffer.from(resource) },
          { name: 'Uri-Query', value: Buffer.from(`token=${READ}`) },
        ] as never,
      });
      const t0 = performance.now();
      const got = new Promise<void>((r) => sock.once('message', () => r()));
      sock.send(pkt, h.port, '127.0.0.1');
      await got;
      lat.push(performance.now() - t0);
    }
    lat.sort((a, b) => a - b);
    console.log(
      `GET /mgmt/${resource}: n=${lat.length} p50=${pct(lat, 50).toFixed(2)} ms p99=${pct(lat, 99).toFixed(2)} ms`,
    );
  }
  sock.close();
  await h.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
