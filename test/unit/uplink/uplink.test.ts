import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseConfig, redactSecrets } from '../../../src/config/load.js';
import { binaryReadingCodec } from '../../../src/queue/codec.js';
import { Outbox } from '../../../src/queue/outbox.js';
import { outboxPort } from '../../../src/queue/port.js';
import { openDatabase } from '../../../src/store/db.js';
import { Uplink } from '../../../src/uplink/uplink.js';

function capture() {
  const lines: { msg: string; reason?: string; code?: string }[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    }),
  );
  return { log, lines };
}

function rig(t: { after(fn: () => Promise<void> | void): void }, uplinkYaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'egw-uplink-unit-'));
  const config = parseConfig(
    `version: 1\ngateway: { id: gw-u }\nuplink:\n${uplinkYaml}\nqueue: { outbox: { commit_wait_ms: 1 } }\n`,
  );
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const { log, lines } = capture();
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
  const uplink = new Uplink({
    config: config.uplink,
    queue: config.queue,
    gatewayId: 'gw-u',
    outbox: outboxPort(outbox),
    log,
  });
  t.after(async () => {
    await uplink.stop();
    outbox.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { outbox, uplink, lines };
}

test('uplink config: only mqtt:// and mqtts:// URLs; the password is redacted', () => {
  assert.throws(() => parseConfig('version: 1\nuplink: { url: "http://x" }\n'), /uplink\.url/);
  const c = parseConfig('version: 1\nuplink: { url: "mqtts://cloud:8883", password: hunter2 }\n');
  assert.equal((redactSecrets(c) as { uplink: { password: string } }).uplink.password, '[redacted]');
  assert.equal(c.uplink.ack_timeout_ms, 30000);
});

/**
 * A minimal MQTT peer on 127.0.0.1 that answers CONNECT with CONNACK and PINGREQ with PINGRESP and
 * never acknowledges a PUBLISH. `seen(type, data, bodyAt, connection)` sees every control packet
 * (`bodyAt`: where its variable header starts in `data`; `connection`: 1 for the first socket, …).
 * Resolves to its port; closed after the test.
 */
async function silentPeer(
  t: TestContext,
  seen: (type: number, data: Buffer, bodyAt: number, connection: number) => void,
): Promise<number> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    const conn = ++connections;
    s.on('data', (d) => {
      for (let i = 0; i < d.length;) {
        const type = d[i]! >> 4;
        // Remaining length: variable-length integer [MQTT-2.2.3].
        let len = 0;
        let mul = 1;
        let j = i + 1;
        for (;;) {
          const b = d[j++]!;
          len += (b & 0x7f) * mul;
          mul *= 128;
          if (!(b & 0x80)) break;
        }
        seen(type, d, j, conn);
        if (type === 1) s.write(Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00]));
        if (type === 12) s.write(Buffer.from([0xd0, 0x00]));
        i = j + len;
      }
    });
    s.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

test('a broker that never sends PUBACK: offline after ack_timeout_ms (logged once), reconnect, same message re-sent', async (t) => {
  const publishes: number[] = [];
  const port = await silentPeer(t, (type, _d, _j, conn) => {
    if (type === 3) publishes.push(conn);
  });
  const { outbox, uplink, lines } = rig(
    t,
    `  url: mqtt://127.0.0.1:${port}\n  ack_timeout_ms: 1000\n  reconnect: { min_ms: 50, max_ms: 100 }`,
  );
  await uplink.start();
  await outbox.enqueue({ topic: 'alerts/a', payload: Buffer.from('{}') });
  const deadline = Date.now() + 10000;
  while (!publishes.some((c) => c >= 2) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(publishes.filter((c) => c === 1).length >= 1, 'sent on the first connection');
  assert.ok(
    publishes.some((c) => c >= 2),
    're-sent after reconnecting',
  );
  const offline = lines.filter((l) => l.msg === 'uplink offline' && l.code === 'EGW_UPLINK_OFFLINE');
  assert.equal(offline.length, 1, 'the transition is logged once');
  assert.match(offline[0]!.reason ?? '', /no PUBACK within 1000 ms/);
  assert.equal(outbox.classStats()[0]!.depth, 1, 'still in the outbox: never acknowledged');
  assert.equal(uplink.counters.ackTimeouts, 1);
});

test('unreachable cloud: start does not block, the uplink is offline and healthy, retries with backoff', async (t) => {
  const { uplink, lines } = rig(t, '  url: mqtt://127.0.0.1:1\n  reconnect: { min_ms: 20, max_ms: 100 }');
  await uplink.start();
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual({ ok: uplink.health().ok, state: uplink.health().state }, { ok: true, state: 'offline' });
  // A normal start is not announced as "offline" (it has not been online); the cause is logged once.
  assert.equal(lines.filter((l) => l.msg === 'uplink offline').length, 0);
  assert.equal(lines.filter((l) => l.msg.startsWith('uplink connecting')).length, 1);
  assert.equal(
    lines.filter((l) => l.msg.startsWith('uplink cannot connect')).length,
    1,
    'the failure is logged once despite many retries',
  );
});

test('two-way link: persistent session requested; a send() pending when the connection drops fails at once instead of hanging', async (t) => {
  const connects: { cleanStart: boolean }[] = [];
  const publishes: number[] = [];
  const port = await silentPeer(t, (type, d, j) => {
    // CONNECT's variable header: protocol name (2 + 4), level (1), flags (1) [MQTT-3.1.2.2]
    if (type === 1) connects.push({ cleanStart: (d[j + 7]! & 0x02) !== 0 });
    if (type === 3) publishes.push(1);
  });
  const dir = mkdtempSync(join(tmpdir(), 'egw-uplink-link-'));
  const config = parseConfig(
    `version: 1\ngateway: { id: gw-u }\nuplink: { url: "mqtt://127.0.0.1:${port}", reconnect: { min_ms: 50, max_ms: 100 }, downlink: { enabled: true, session_expiry_s: 600 } }\n`,
  );
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const { log } = capture();
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
  let connected = 0;
  const uplink = new Uplink({
    config: config.uplink,
    queue: config.queue,
    gatewayId: 'gw-u',
    outbox: outboxPort(outbox),
    log,
  });
  uplink.onConnected(() => void connected++);
  t.after(async () => {
    await uplink.stop();
    outbox.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await uplink.start();
  const deadline = Date.now() + 5000;
  while (connected === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(connected, 1);
  assert.deepEqual(connects[0], { cleanStart: false });
  const pending = uplink.send(uplink.profile.reportState({}, 's-1'));
  while (publishes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const t0 = Date.now();
  uplink.forceReconnect();
  await assert.rejects(pending, /connection dropped/);
  assert.ok(Date.now() - t0 < 1000, 'settled by the drop, not by ack_timeout_ms (30 s)');
});
