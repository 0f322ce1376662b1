// The uplink over mqtts:// to Debian's mosquitto with a TLS listener (certificates made by the
// openssl CLI in tls-certs.ts): client certificate as identity, username/password, and a wrong CA.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import type { Reading } from '../../src/pipeline/reading.js';
import { binaryReadingCodec } from '../../src/queue/codec.js';
import { Outbox } from '../../src/queue/outbox.js';
import { outboxPort } from '../../src/queue/port.js';
import { openDatabase } from '../../src/store/db.js';
import { Uplink } from '../../src/uplink/uplink.js';
import { GatewayProcess, tempDir, type LogLine } from '../helpers/gateway-process.js';
import { makePki, type Pki } from './tls-certs.js';
import { TlsCloud } from './tls-cloud.js';
import { CloudSubscriber } from './uplink-cloud.js';

const reading = (dev: string, i: number): Reading => ({
  deviceId: dev,
  ts: 1_700_000_000_000 + i,
  values: { i },
  quality: 'good',
  source: 'mqtt',
});

/** An in-process outbox + uplink on a temp SQLite file, logging into `lines`. */
async function uplinkRig(t: { after(fn: () => Promise<void> | void): void }, dir: string, uplinkYaml: string) {
  const lines: LogLine[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, cb) {
        lines.push(JSON.parse(String(chunk)) as LogLine);
        cb();
      },
    }),
  );
  const config = parseConfig(
    `version: 1\ngateway: { id: gw-tls }\nqueue: { outbox: { commit_wait_ms: 1 }, classes: { MEDIUM: { batch_window_ms: 20 } } }\nuplink:\n${uplinkYaml}\n  reconnect: { min_ms: 50, max_ms: 200 }\n`,
  );
  const db = openDatabase({ path: join(dir, `gw-${Math.random().toString(16).slice(2)}.db`), durability: 'normal' });
  const outbox = new Outbox({ db, log, config: config.queue, codec: binaryReadingCodec });
  const uplink = new Uplink({
    config: config.uplink,
    queue: config.queue,
    gatewayId: 'gw-tls',
    outbox: outboxPort(outbox),
    log,
  });
  t.after(async () => {
    await uplink.stop();
    outbox.close();
    db.close();
  });
  return { outbox, uplink, lines };
}

async function waitUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('uplink over mqtts:// to mosquitto', () => {
  let pki: Pki;
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    pki = makePki();
    tmp = tempDir('egw-uplinktls-');
  });
  after(() => {
    tmp?.cleanup();
    pki?.cleanup();
  });

  test('with CA + client certificate/key: readings reach the cloud; mosquitto knows the gateway by its CN', async (t) => {
    const cloud = await TlsCloud.start(pki, { kind: 'certificate' });
    const sub = await CloudSubscriber.connect(cloud.plainUrl);
    t.after(async () => (await sub.close(), await cloud.close()));
    const { outbox, uplink, lines } = await uplinkRig(
      t,
      tmp.dir,
      `  url: ${cloud.tlsUrl}\n  ca_file: ${pki.ca}\n  cert_file: ${pki.clientCert}\n  key_file: ${pki.clientKey}`,
    );
    await uplink.start();
    for (let i = 0; i < 50; i++) await outbox.enqueueReadings([reading('dev-a', i)], 'sensors/dev-a/data');
    await sub.waitFor(() => sub.readings().length === 50, 10000);
    assert.ok(sub.messages.every((m) => m.topic === 'edge/gw-tls/sensors/dev-a/data'));
    assert.deepEqual(
      sub.readings().map((r) => r.values['i']),
      [...Array(50).keys()],
    );
    assert.ok(uplink.isOnline);
    assert.ok(!lines.some((l) => l['code'] === 'EGW_UPLINK_TLS'));
    // use_identity_as_username: mosquitto logs the connection with the certificate's CN.
    await waitUntil(() => cloud.log.some((l) => /u'device-42'/.test(l)), 2000, 'mosquitto log names device-42');
  });

  test('with CA + username/password (mosquitto_passwd file): readings reach the cloud; a wrong password is logged once', async (t) => {
    const cloud = await TlsCloud.start(pki, { kind: 'password', username: 'gw-user', password: 's3cret' });
    const sub = await CloudSubscriber.connect(cloud.plainUrl);
    t.after(async () => (await sub.close(), await cloud.close()));
    const good = await uplinkRig(
      t,
      tmp.dir,
      `  url: ${cloud.tlsUrl}\n  ca_file: ${pki.ca}\n  username: gw-user\n  password: s3cret`,
    );
    await good.uplink.start();
    for (let i = 0; i < 20; i++) await good.outbox.enqueueReadings([reading('dev-p', i)], 'sensors/dev-p/data');
    await sub.waitFor(() => sub.readings().length === 20, 10000);

    const bad = await uplinkRig(
      t,
      tmp.dir,
      `  url: ${cloud.tlsUrl}\n  ca_file: ${pki.ca}\n  username: gw-user\n  password: wrong\n  client_id: gw-bad`,
    );
    await bad.uplink.start();
    await bad.outbox.enqueueReadings([reading('dev-q', 1)], 'sensors/dev-q/data');
    await waitUntil(
      () =>
        bad.uplink.counters.connects === 0 &&
        cloud.log.filter((l) => /not authori[sz]ed|bad user/i.test(l)).length >= 4,
      5000,
      'several refused attempts',
    );
    const refused = bad.lines.filter(
      (l) => l['code'] === 'EGW_UPLINK_OFFLINE' && l.msg.startsWith('uplink cannot connect'),
    );
    assert.equal(refused.length, 1, JSON.stringify(bad.lines));
    assert.match(String(refused[0]!['reason']), /Bad User Name or Password|Not authorized/i);
    assert.equal(
      bad.outbox.classStats().reduce((a, c) => a + c.readings, 0),
      1,
      'kept in the outbox',
    );
  });

  test('a client certificate from another CA is refused by the cloud: offline, one clear TLS error', async (t) => {
    const cloud = await TlsCloud.start(pki, { kind: 'certificate' });
    t.after(() => cloud.close());
    const { uplink, lines } = await uplinkRig(
      t,
      tmp.dir,
      `  url: ${cloud.tlsUrl}\n  ca_file: ${pki.ca}\n  cert_file: ${pki.otherClientCert}\n  key_file: ${pki.otherClientKey}`,
    );
    await uplink.start();
    await waitUntil(
      () => cloud.log.filter((l) => /OpenSSL Error|certificate verify failed|protocol error/i.test(l)).length >= 3,
      5000,
      'three refused handshakes',
    );
    assert.equal(uplink.isOnline, false);
    const tlsErrors = lines.filter((l) => l['code'] === 'EGW_UPLINK_TLS');
    assert.equal(tlsErrors.length, 1, JSON.stringify(lines));
    assert.equal(tlsErrors[0]!['reason'], 'tlsv1 alert unknown ca');
    assert.match(
      tlsErrors[0]!.msg,
      /cloud broker refused the handshake; check that it trusts the CA of uplink\.cert_file/,
    );
  });

  test('a wrong CA: the gateway stays offline with one clear error, keeps the readings, delivers them after the fix and a restart', async () => {
    const cloud = await TlsCloud.start(pki, { kind: 'certificate' });
    const sub = await CloudSubscriber.connect(cloud.plainUrl);
    const data = join(tmp.dir, 'gw-data');
    const yaml = (ca: string) =>
      [
        'version: 1',
        `gateway: { id: gw-tls, data_dir: ${JSON.stringify(data)}, log_level: info, shutdown_timeout_ms: 5000 }`,
        'metrics: { enabled: false }',
        'coap: { enabled: false }',
        'broker: { host: 127.0.0.1, port: 0, connect_rate_per_ip: 0 }',
        'queue: { classes: { MEDIUM: { batch_window_ms: 20 } } }',
        'uplink:',
        `  url: ${cloud.tlsUrl}`,
        `  ca_file: ${ca}`,
        `  cert_file: ${pki.clientCert}`,
        `  key_file: ${pki.clientKey}`,
        '  reconnect: { min_ms: 50, max_ms: 200 }',
      ].join('\n');
    const configPath = tmp.file('gateway.yaml', yaml(pki.otherCa));
    let gp = GatewayProcess.start(configPath);
    try {
      await gp.ready(20000);
      const port = Number((await gp.waitForLog((l) => l.msg === 'MQTT broker listening'))['port']);
      const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: 'dev-w',
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
      for (let i = 0; i < 30; i++) await dev.publishAsync('sensors/dev-w/data', JSON.stringify({ seq: i }), { qos: 1 });
      await dev.endAsync();
      // Retries go on (mosquitto sees repeated handshakes) while the error is logged once.
      await waitUntil(
        () =>
          cloud.log.filter((l) => l.includes(`on port ${cloud.tlsPort}.`) && l.includes('New connection from'))
            .length >= 3,
        5000,
        'three attempts',
      );
      const tlsErrors = gp.logs.filter((l) => l['code'] === 'EGW_UPLINK_TLS');
      assert.equal(tlsErrors.length, 1, JSON.stringify(tlsErrors));
      assert.equal(tlsErrors[0]!.level, 'error');
      assert.match(
        String(tlsErrors[0]!['reason']),
        /self[- ]signed certificate in certificate chain|unable to (get|verify)/i,
      );
      assert.match(tlsErrors[0]!.msg, /not trusted; check that uplink\.ca_file signs it/);
      assert.equal(sub.messages.length, 0);
      assert.equal(await gp.stop(), 0);
      // The outbox (SQLite) holds every acknowledged reading.
      const db = new Database(join(data, 'gateway.db'), { readonly: true });
      const n = (db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;
      db.close();
      assert.ok(n >= 1, `outbox rows: ${n}`);

      // Fix the config, restart: everything arrives.
      tmp.file('gateway.yaml', yaml(pki.ca));
      gp = GatewayProcess.start(configPath);
      await gp.ready(20000);
      await sub.waitFor(() => sub.readings().length === 30, 15000);
      assert.deepEqual(
        sub
          .readings()
          .map((r) => Number(r.values['seq']))
          .sort((a, b) => a - b),
        [...Array(30).keys()],
      );
      await gp.waitForLog((l) => l.msg === 'uplink online', 5000);
      assert.ok(!gp.logs.some((l) => l['code'] === 'EGW_UPLINK_TLS'));
    } finally {
      await gp.stop('SIGKILL');
      await sub.close();
      await cloud.close();
    }
  });

  test('unreadable or mismatched uplink TLS files fail the start with EGW_UPLINK_TLS', async (t) => {
    const cases: [string, string, RegExp][] = [
      ['missing ca', `  ca_file: ${join(tmp.dir, 'nope.pem')}`, /cannot read uplink\.ca_file .*ENOENT/],
      ['key as ca', `  ca_file: ${pki.clientKey}`, /uplink\.ca_file .* holds no PEM certificate/],
      ['cert without key', `  cert_file: ${pki.clientCert}`, /cert_file and uplink\.key_file go together/],
      ['mismatched key', `  cert_file: ${pki.clientCert}\n  key_file: ${pki.serverKey}`, /cannot use the TLS files/],
    ];
    for (const [name, yaml, pattern] of cases) {
      const { uplink } = await uplinkRig(t, tmp.dir, `  url: mqtts://127.0.0.1:1\n${yaml}`);
      await assert.rejects(uplink.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'EGW_UPLINK_TLS', name);
        assert.match(err.message, pattern, name);
        return true;
      });
    }
  });
});
