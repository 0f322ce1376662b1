/**
 * SqlitePersistence under a real aedes 1.2 broker with real mqtt.js clients over TCP: a
 * persistent session's subscription, its queued QoS 1 messages and a retained message survive a
 * broker restart on the reopened database. (The whole-gateway restart test belongs to the broker.)
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { SqlitePersistence } from '../../../src/broker/persistence/index.js';
import type { Db } from '../../../src/store/db.js';
import { TempDbs } from './persistence-helpers.js';

const dbs = new TempDbs();
after(() => dbs.cleanup());

interface Running {
  broker: Aedes;
  server: Server;
  persistence: SqlitePersistence;
  db: Db;
  url: string;
}

async function start(path: string): Promise<Running> {
  const db = dbs.openDb(path);
  const persistence = new SqlitePersistence({ db });
  const broker = await Aedes.createBroker({ persistence });
  const server = createServer(broker.handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { broker, server, persistence, db, url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function stop(r: Running): Promise<void> {
  await new Promise<void>((res) => r.broker.close(() => res()));
  await new Promise<void>((res) => r.server.close(() => res()));
  await r.persistence.destroy();
  r.db.close();
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('persistent session, queued QoS 1 messages and retained survive an aedes restart', async (t) => {
  const path = dbs.path();
  let run = await start(path);
  t.after(async () => {
    if (run.db.open) await stop(run);
  });

  // The device subscribes with a persistent session, then goes away.
  const dev1 = await mqtt.connectAsync(run.url, { clientId: 'dev-1', clean: false, reconnectPeriod: 0 });
  await dev1.subscribeAsync('commands/dev-1', { qos: 1 });
  await dev1.endAsync();

  // While it is offline: three commands and a retained status.
  const pub = await mqtt.connectAsync(run.url, { clientId: 'ops', reconnectPeriod: 0 });
  for (let i = 1; i <= 3; i++) await pub.publishAsync('commands/dev-1', `cmd-${i}`, { qos: 1 });
  await pub.publishAsync('devices/dev-1/status', 'online', { qos: 1, retain: true });
  await pub.endAsync();

  await stop(run);
  run = await start(path);

  // The device comes back: its session is present and the queued commands arrive in order.
  const got: string[] = [];
  const dev2 = mqtt.connect(run.url, { clientId: 'dev-1', clean: false, reconnectPeriod: 0 });
  dev2.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  const connack = await new Promise<{ sessionPresent: boolean }>((res, rej) => {
    dev2.once('connect', res);
    dev2.once('error', rej);
  });
  assert.equal(connack.sessionPresent, true, 'session restored from SQLite');
  await waitFor('queued commands', () => got.length >= 3);
  assert.deepEqual(got, ['commands/dev-1 cmd-1', 'commands/dev-1 cmd-2', 'commands/dev-1 cmd-3']);

  // The restored subscription is live, and the retained status is still served.
  const pub2 = await mqtt.connectAsync(run.url, { clientId: 'ops', reconnectPeriod: 0 });
  await pub2.publishAsync('commands/dev-1', 'cmd-4', { qos: 1 });
  await waitFor('live command', () => got.length >= 4);
  const watcher = await mqtt.connectAsync(run.url, { clientId: 'watcher', reconnectPeriod: 0 });
  const status: string[] = [];
  watcher.on('message', (topic, payload, packet) => status.push(`${topic} ${payload.toString()} ${packet.retain}`));
  await watcher.subscribeAsync('devices/+/status', { qos: 1 });
  await waitFor('retained status', () => status.length >= 1);
  assert.deepEqual(status, ['devices/dev-1/status online true']);

  // Everything delivered was acknowledged: nothing left queued for dev-1.
  await waitFor('queue drained', () => run.persistence.stats().outgoing === 0);
  await Promise.all([dev2.endAsync(), pub2.endAsync(), watcher.endAsync()]);
});
