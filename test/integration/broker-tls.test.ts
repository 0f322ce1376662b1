// The broker's TLS listener with real TLS: certificates made by the openssl CLI (tls-certs.ts),
// mqtt.js and mosquitto_pub as clients, the built gateway process for start-up failures.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { BrokerService } from '../../src/broker/broker.js';
import { hashPassword } from '../../src/broker/password.js';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log/logger.js';
import { GatewayProcess, tempDir } from '../helpers/gateway-process.js';
import { brokerConfigYaml, collect, freePort, metric, run, startGateway, until } from './broker-harness.js';
import { makePki, type Pki } from './tls-certs.js';

const FAST = { N: 1024, r: 8, p: 1 };

/**
 * mqtt.js client, no reconnect, bounded connect. allowRetries=false: a refusal that arrives as a TLS
 * alert after the handshake (TLS 1.3 checks the client certificate after the client finished) only
 * closes the socket, and connectAsync would otherwise wait forever for 'connect' or 'error'.
 */
function connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, keepalive: 30, ...opts }, false);
}

function tlsYaml(pki: Pki, opts: { ca?: boolean; require?: boolean } = {}): string {
  return [
    '  connect_rate_per_ip: 0',
    '  tls:',
    '    enabled: true',
    '    host: 127.0.0.1',
    '    port: 0',
    `    cert_file: ${pki.serverCert}`,
    `    key_file: ${pki.serverKey}`,
    ...(opts.ca ? [`    ca_file: ${pki.ca}`] : []),
    ...(opts.require ? ['    require_client_cert: true'] : []),
  ].join('\n');
}

/** Gateway (broker only, in process) with a TLS listener on an ephemeral port. */
async function tlsGateway(dir: string, yaml: string) {
  const g = await startGateway(join(dir, `data-${Math.random().toString(16).slice(2)}`), yaml);
  const tlsPort = g.broker.tlsPort;
  assert.ok(tlsPort && tlsPort > 0, 'TLS port read back');
  return { ...g, tlsUrl: `mqtts://127.0.0.1:${tlsPort}`, tlsPort };
}

describe('broker TLS listener (server certificate, optional client certificates)', () => {
  let pki: Pki;
  let tmp: ReturnType<typeof tempDir>;
  let gateway: Gateway;
  let url: string;
  let tlsUrl: string;
  const clients: MqttClient[] = [];
  const client = async (u: string, opts: IClientOptions = {}) => {
    const c = await connect(u, opts);
    clients.push(c);
    return c;
  };
  const ca = () => readFileSync(pki.ca);

  before(async () => {
    pki = makePki();
    tmp = tempDir('egw-brokertls-');
    const users = `  users:\n    - username: dev\n      password_hash: "${await hashPassword('pw', FAST)}"`;
    ({ gateway, url, tlsUrl } = await tlsGateway(tmp.dir, `${tlsYaml(pki, { ca: true })}\n${users}`));
  });

  after(async () => {
    for (const c of clients) c.end(true);
    await gateway?.stop();
    tmp?.cleanup();
    pki?.cleanup();
  });

  test('mqtt.js over mqtts trusting the CA: password login, publish/subscribe round trip', async () => {
    const sub = await client(tlsUrl, { ca: ca(), clientId: 'dev-sub', username: 'dev', password: 'pw' });
    const got = collect(sub);
    // Default ACL: dev-sub may read commands/dev-sub.
    await sub.subscribeAsync('commands/dev-sub', { qos: 1 });
    const ops = await client(url, { clientId: 'ops-local' }); // plain listener, anonymous loopback
    await ops.publishAsync('commands/dev-sub', 'open', { qos: 1 });
    const [m] = await got.next(1);
    assert.equal(m!.payload.toString(), 'open');
    const pub = await client(tlsUrl, { ca: ca(), clientId: 'dev-pub', username: 'dev', password: 'pw' });
    const spy = collect(ops);
    await ops.subscribeAsync('sensors/dev-pub/data', { qos: 1 });
    await pub.publishAsync('sensors/dev-pub/data', '{"t":1}', { qos: 1 });
    assert.equal((await spy.next(1))[0]!.payload.toString(), '{"t":1}');
    assert.equal(gateway.context.latest.get('dev-pub')?.values['t'], 1);
  });

  test('a client that does not trust the CA refuses the server (the listener presents its certificate)', async () => {
    await assert.rejects(connect(tlsUrl, { clientId: 'x' }), /self[- ]signed|unable to (get|verify)/i);
  });

  test('the TLS listener is not anonymous loopback: no credentials from 127.0.0.1 → CONNACK 5', async () => {
    const before = await metric(gateway.context.metrics, 'edge_gateway_mqtt_auth_failures_total', {
      reason: 'not_authorized',
    });
    await assert.rejects(connect(tlsUrl, { ca: ca(), clientId: 'anon-1' }), /Not authorized/i);
    // A certificate from another CA does not verify: it authenticates nobody, so still anonymous → refused.
    await assert.rejects(
      connect(tlsUrl, {
        ca: ca(),
        clientId: 'device-42',
        cert: readFileSync(pki.otherClientCert),
        key: readFileSync(pki.otherClientKey),
      }),
      /Not authorized/i,
    );
    assert.equal(
      (await metric(gateway.context.metrics, 'edge_gateway_mqtt_auth_failures_total', { reason: 'not_authorized' })) -
        before,
      2,
    );
    // The plain listener on loopback still trusts anonymous local clients (docs/broker.md).
    await client(url, { clientId: 'anon-plain' });
  });

  test('with ca_file (not required) a verified certificate logs in without a password', async () => {
    const dev = await client(tlsUrl, {
      ca: ca(),
      clientId: 'device-42',
      cert: readFileSync(pki.clientCert),
      key: readFileSync(pki.clientKey),
    });
    await dev.publishAsync('sensors/device-42/data', '{"v":7}', { qos: 1 });
    assert.equal(gateway.context.latest.get('device-42')?.values['v'], 7);
  });
});

describe('broker TLS listener with require_client_cert', () => {
  let pki: Pki;
  let tmp: ReturnType<typeof tempDir>;
  let gateway: Gateway;
  let broker: BrokerService;
  let url: string;
  let tlsUrl: string;
  let tlsPort: number;
  const clients: MqttClient[] = [];
  const client = async (u: string, opts: IClientOptions = {}) => {
    const c = await connect(u, opts);
    clients.push(c);
    return c;
  };
  const certOpts = (): IClientOptions => ({
    ca: readFileSync(pki.ca),
    cert: readFileSync(pki.clientCert),
    key: readFileSync(pki.clientKey),
  });

  before(async () => {
    pki = makePki();
    tmp = tempDir('egw-brokertls-req-');
    ({ gateway, broker, url, tlsUrl, tlsPort } = await tlsGateway(tmp.dir, tlsYaml(pki, { ca: true, require: true })));
  });

  after(async () => {
    for (const c of clients) c.end(true);
    await gateway?.stop();
    tmp?.cleanup();
    pki?.cleanup();
  });

  test('a client with a valid certificate connects; its CN is the username and the default ACL applies', async () => {
    const m = gateway.context.metrics;
    const spy = await client(url, { clientId: 'spy-local' });
    const got = collect(spy);
    await spy.subscribeAsync('sensors/#', { qos: 1 });
    const dev = await client(tlsUrl, { ...certOpts(), clientId: 'device-42' });
    const denied0 = await metric(m, 'edge_gateway_mqtt_acl_denied_total', { action: 'publish' });
    await dev.publishAsync('sensors/device-42/data', '{"temp":21.5}', { qos: 1 });
    await dev.publishAsync('sensors/other/data', '{"temp":99}', { qos: 1 }); // acknowledged, discarded
    await dev.publishAsync('sensors/device-42/data', '{"temp":22}', { qos: 1 });
    const msgs = await got.next(2);
    assert.deepEqual(
      msgs.map((x) => x.topic),
      ['sensors/device-42/data', 'sensors/device-42/data'],
    );
    assert.equal((await metric(m, 'edge_gateway_mqtt_acl_denied_total', { action: 'publish' })) - denied0, 1);
    assert.equal(gateway.context.latest.get('other'), undefined);
    assert.equal(gateway.context.latest.get('device-42')?.values['temp'], 22);
    // Subscribing outside the default ACL is refused (SUBACK 0x80).
    await assert.rejects(dev.subscribeAsync('sensors/#', { qos: 1 }), /Subscribe error/);
    // The CN is the username: the same username is accepted, another one is refused (CONNACK 5).
    await client(tlsUrl, { ...certOpts(), clientId: 'device-42b', username: 'device-42' });
    await assert.rejects(
      connect(tlsUrl, { ...certOpts(), clientId: 'device-42c', username: 'someone-else', password: 'x' }),
      /Not authorized/i,
    );
    // The device registry knows it as an authenticated device.
    await until(() => gateway.context.devices.get('device-42')?.online === true, 5000, 'device online');
  });

  test("a client without a certificate, or with another CA's certificate, is refused and counted", async () => {
    const m = gateway.context.metrics;
    const c0 = await metric(m, 'edge_gateway_mqtt_auth_failures_total', { reason: 'certificate' });
    await assert.rejects(connect(tlsUrl, { ca: readFileSync(pki.ca), clientId: 'nocert' }));
    await assert.rejects(
      connect(tlsUrl, {
        ca: readFileSync(pki.ca),
        clientId: 'device-42',
        cert: readFileSync(pki.otherClientCert),
        key: readFileSync(pki.otherClientKey),
      }),
    );
    // Even a valid password does not replace the certificate.
    await assert.rejects(
      connect(tlsUrl, { ca: readFileSync(pki.ca), clientId: 'dev-9', username: 'dev', password: 'pw' }),
    );
    await until(
      async () => (await metric(m, 'edge_gateway_mqtt_auth_failures_total', { reason: 'certificate' })) - c0 === 3,
      5000,
      '3 certificate failures counted',
    );
    assert.equal(broker.health().ok, true);
  });

  test('mosquitto_pub with --cafile --cert --key is an independent client that works', async () => {
    const spy = await client(url, { clientId: 'spy-mosq' });
    const got = collect(spy);
    await spy.subscribeAsync('sensors/device-42/data', { qos: 1 });
    const base = [
      '-h',
      '127.0.0.1',
      '-p',
      String(tlsPort),
      '--cafile',
      pki.ca,
      '-i',
      'device-42',
      '-q',
      '1',
      '-t',
      'sensors/device-42/data',
    ];
    const ok = await run('mosquitto_pub', [
      ...base,
      '--cert',
      pki.clientCert,
      '--key',
      pki.clientKey,
      '-m',
      '{"rpm":1200}',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await got.next(1))[0]!.payload.toString(), '{"rpm":1200}');
    assert.equal(gateway.context.latest.get('device-42')?.values['rpm'], 1200);
    const nocert = await run('mosquitto_pub', [...base, '-m', '{"rpm":1}']);
    assert.notEqual(nocert.code, 0);
    const other = await run('mosquitto_pub', [
      ...base,
      '--cert',
      pki.otherClientCert,
      '--key',
      pki.otherClientKey,
      '-m',
      '{"rpm":2}',
    ]);
    assert.notEqual(other.code, 0);
    assert.equal(got.messages.length, 1);
  });
});

describe('broker TLS start-up errors (gateway process)', () => {
  let pki: Pki;
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    pki = makePki();
    tmp = tempDir('egw-brokertls-proc-');
  });
  after(() => {
    tmp?.cleanup();
    pki?.cleanup();
  });

  const yaml = (name: string, tls: Record<string, string>) =>
    [
      'version: 1',
      'gateway:',
      `  data_dir: ${join(tmp.dir, name)}`,
      '  log_level: info',
      'metrics: { enabled: false }',
      'coap: { enabled: false }',
      'uplink: { enabled: false }',
      'broker:',
      '  host: 127.0.0.1',
      '  port: 0',
      '  tls:',
      '    enabled: true',
      '    host: 127.0.0.1',
      '    port: 0',
      ...Object.entries(tls).map(([k, v]) => `    ${k}: ${v}`),
    ].join('\n');

  async function failsWith(name: string, tls: Record<string, string>, pattern: RegExp): Promise<void> {
    const gp = GatewayProcess.start(tmp.file(`${name}.yaml`, yaml(name, tls)));
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => (gp.child.kill('SIGKILL'), resolve(null)), 15000);
      gp.child.once('exit', (c) => (clearTimeout(t), resolve(c)));
    });
    assert.equal(code, 1, `${name}: exit code; logs: ${JSON.stringify(gp.logs.slice(-3))}`);
    assert.ok(
      gp.logs.some((l) => l.level === 'fatal' && l.msg === 'gateway failed to start'),
      `${name}: no fatal line`,
    );
    const line = gp.logs.find((l) => l.msg === 'service broker failed to start');
    assert.ok(line, `${name}: no broker error line: ${JSON.stringify(gp.logs)}`);
    const err = line['err'] as { code?: string; message?: string } | undefined;
    assert.equal(err?.code, 'EGW_MQTT_TLS', name);
    assert.match(err?.message ?? '', pattern, name);
    // Nothing listened: the TLS material is checked before the plain listener opens.
    assert.ok(!gp.logs.some((l) => l.msg === 'MQTT broker listening'), `${name}: plain listener opened`);
  }

  test('a missing cert file or a key that does not match fails the process start: exit 1, EGW_MQTT_TLS logged', async () => {
    await Promise.all([
      failsWith(
        'missing-cert',
        { cert_file: join(tmp.dir, 'nope.pem'), key_file: pki.serverKey },
        /cert_file .*nope\.pem.*ENOENT/,
      ),
      failsWith(
        'mismatched-key',
        { cert_file: pki.serverCert, key_file: pki.clientKey },
        /cannot use .*(mismatch|key values)/i,
      ),
    ]);
  });

  test('every unusable TLS setting fails the start with EGW_MQTT_TLS before any listener opens (in process)', async () => {
    const dirAsFile = join(tmp.dir, 'a-directory');
    mkdirSync(dirAsFile);
    const garbage = tmp.file('garbage.pem', 'not a certificate\n');
    const cases: [string, Record<string, string>, RegExp][] = [
      ['no-key', { cert_file: pki.serverCert }, /key_file is required/],
      ['unreadable-key', { cert_file: pki.serverCert, key_file: dirAsFile }, /key_file .*EISDIR/],
      [
        'missing-ca',
        { cert_file: pki.serverCert, key_file: pki.serverKey, ca_file: join(tmp.dir, 'ca-nope.pem') },
        /ca_file .*ENOENT/,
      ],
      [
        'require-without-ca',
        { cert_file: pki.serverCert, key_file: pki.serverKey, require_client_cert: 'true' },
        /require_client_cert needs broker\.tls\.ca_file/,
      ],
      ['garbage-cert', { cert_file: garbage, key_file: pki.serverKey }, /cannot use/],
      [
        'garbage-ca',
        { cert_file: pki.serverCert, key_file: pki.serverKey, ca_file: garbage },
        /ca_file .* holds no PEM certificate/,
      ],
      [
        'key-as-ca',
        { cert_file: pki.serverCert, key_file: pki.serverKey, ca_file: pki.serverKey },
        /holds no PEM certificate/,
      ],
    ];
    for (const [name, tls, pattern] of cases) {
      const port = await freePort();
      const extra = [
        '  tls:',
        '    enabled: true',
        '    host: 127.0.0.1',
        '    port: 0',
        ...Object.entries(tls).map(([k, v]) => `    ${k}: ${v}`),
      ].join('\n');
      // Uplink off: not under test here.
      const yamlText = `${brokerConfigYaml(join(tmp.dir, `inproc-${name}`), port, extra)}\nuplink:\n  enabled: false\n`;
      const config = parseConfig(yamlText, name, {});
      const gw = new Gateway({ config, log: createLogger({ level: 'silent' }), env: {} });
      const err = await gw.start().then(
        () => undefined,
        (e: Error & { cause?: Error & { code?: string } }) => e,
      );
      if (!err) await gw.stop();
      assert.ok(err, `${name}: started`);
      assert.equal(err.cause?.code, 'EGW_MQTT_TLS', name);
      assert.match(err.cause?.message ?? '', pattern, name);
      // The plain listener never opened (TLS material is checked first): its port is still free.
      const probe = createServer();
      await new Promise<void>(
        (resolve, reject) => (probe.once('error', reject), probe.listen(port, '127.0.0.1', () => resolve())),
      );
      await new Promise((r) => probe.close(r));
    }
  });

  test('a good TLS config starts on the logged port; a refused client certificate is logged with its reason', async () => {
    const gp = GatewayProcess.start(
      tmp.file(
        'good.yaml',
        yaml('good', {
          cert_file: pki.serverCert,
          key_file: pki.serverKey,
          ca_file: pki.ca,
          require_client_cert: 'true',
        }),
      ),
    );
    try {
      await gp.ready(20000);
      const line = await gp.waitForLog((l) => l.msg === 'MQTT TLS listener listening');
      const port = Number(line['port']);
      assert.ok(port > 0);
      const c = await connect(`mqtts://127.0.0.1:${port}`, {
        ca: readFileSync(pki.ca),
        cert: readFileSync(pki.clientCert),
        key: readFileSync(pki.clientKey),
        clientId: 'device-42',
      });
      await c.publishAsync('sensors/device-42/data', '{"x":1}', { qos: 1 });
      await c.endAsync();
      await assert.rejects(
        connect(`mqtts://127.0.0.1:${port}`, {
          ca: readFileSync(pki.ca),
          cert: readFileSync(pki.otherClientCert),
          key: readFileSync(pki.otherClientKey),
          clientId: 'device-42',
        }),
      );
      const refused = await gp.waitForLog((l) => l.msg === 'TLS handshake failed: client certificate refused', 5000);
      assert.equal(refused['code'], 'EGW_MQTT_TLS');
      assert.match(String(refused['err']), /not verified by broker\.tls\.ca_file: UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    } finally {
      assert.equal(await gp.stop(), 0);
    }
  });
});
