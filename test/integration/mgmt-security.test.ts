// CoAP exposure: loopback by default, CIDR allow-lists for ingest and /mgmt (checked with libcoap's
// coap-client-notls from ::1, 127.0.0.1 and 127.0.0.2), secrets redacted from GET /mgmt/config
// (the downstream CoAP psk.key too), and `ctl config set` of a redacted copy keeping the secrets.
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import type { CoapServer } from '../../src/coap/server.js';
import { HOSTILE_CIDRS } from '../unit/config/hostile-cidrs.js';
import { ADMIN, coapClient, READ, startGateway, type Harness } from './coap-harness.js';

const MAIN = new URL('../../src/main.js', import.meta.url).pathname;

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { env: { ...process.env, EDGE_GATEWAY_TOKEN: '', ...env }, timeout: 20000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 99) : 0, stdout, stderr }),
    );
  });
}

function writeTemp(h: Harness, name: string, text: string): string {
  const f = join(h.dir, name);
  writeFileSync(f, text);
  return f;
}

const yaml = (dataDir: string, coap: string, mgmt = '', extra = '') =>
  `version: 1
gateway: { id: gw-sec, data_dir: ${dataDir}, log_level: silent }
broker: { enabled: false }
metrics: { enabled: false }
uplink: { enabled: false }
coap: { port: 0${coap} }
mgmt:
  read_token: ${READ}
  admin_token: ${ADMIN}
${mgmt}
${extra}`;

/** One CON GET /.well-known/core from a raw socket; resolves the answer's code byte, or undefined. */
function probe(host: string, port: number, waitMs = 600): Promise<number | undefined> {
  const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  // CON GET, MID 0x1234, token 0x01, Uri-Path ".well-known", "core"
  const msg = Buffer.concat([
    Buffer.from([0x41, 0x01, 0x12, 0x34, 0x01, 0xbb]),
    Buffer.from('.well-known'),
    Buffer.from([0x04]),
    Buffer.from('core'),
  ]);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, waitMs);
    s.once('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m[1]);
    });
    s.send(msg, port, host);
  });
}

async function dropped(h: Harness, reason: string): Promise<number> {
  const text = await h.gateway.context.metrics.getSingleMetricAsString('edge_gateway_coap_dropped_total');
  const m = new RegExp(`reason="${reason}"} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

describe('CoAP exposure and /mgmt security', () => {
  const open: Harness[] = [];
  after(async () => {
    for (const h of open) await h.close();
  });

  it('binds loopback by default: the resolved config and the real socket; a non-loopback address gets nothing', async () => {
    const h = await startGateway('', (d) => yaml(d, ''));
    open.push(h);
    assert.equal(h.gateway.context.config.coap.host, '127.0.0.1');
    const coap = h.gateway.services.find((s) => s.name === 'coap') as CoapServer;
    assert.equal(coap.address, '127.0.0.1');
    assert.equal(await probe('127.0.0.1', h.port), 0x45); // 2.05
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    if (external) assert.equal(await probe(external, h.port), undefined, `answered on ${external}`);
    assert.equal(await probe('::1', h.port, 300), undefined);
  });

  it('coap.allow_sources: ::1 and 127.0.0.1 may post, 127.0.0.2 is dropped unanswered and counted', async () => {
    const h = await startGateway('', (d) => yaml(d, `, host: '::', allow_sources: ['::1', 127.0.0.1/32]`));
    open.push(h);
    const url6 = (p: string) => `coap://[::1]:${h.port}${p}`;
    const url4 = (p: string) => `coap://127.0.0.1:${h.port}${p}`;
    const post6 = await coapClient(['-m', 'post', '-t', '50', '-e', '{"v":6}', url6('/sensors/cidr-6')]);
    assert.equal(post6.stderr, '');
    const post4 = await coapClient(['-m', 'post', '-t', '50', '-e', '{"v":4}', url4('/sensors/cidr-4')]);
    assert.equal(post4.stderr, '');
    const before = await dropped(h, 'source not allowed');
    const refused = await coapClient(
      ['-a', '127.0.0.2', '-B', '2', '-m', 'post', '-t', '50', '-e', '{"v":2}', url4('/sensors/cidr-2')],
      8000,
    );
    assert.equal(refused.stdout, '');
    assert.ok(!/^2\.0/m.test(refused.stderr), refused.stderr);
    assert.ok((await dropped(h, 'source not allowed')) > before);
    const list = await coapClient(['-m', 'get', url6('/sensors')]);
    const ids = (JSON.parse(list.stdout) as { devices: { deviceId: string }[] }).devices.map((d) => d.deviceId);
    assert.deepEqual(ids.sort(), ['cidr-4', 'cidr-6']);
  });

  it('mgmt.allow_sources: /mgmt from an unlisted source is 4.03 even with the admin token', async () => {
    const h = await startGateway('', (d) =>
      yaml(d, `, host: '::', allow_sources: ['::1/128', 127.0.0.0/8]`, '  allow_sources: [127.0.0.1/32]'),
    );
    open.push(h);
    const q = `?token=${ADMIN}`;
    const ok = await coapClient(['-m', 'get', `coap://127.0.0.1:${h.port}/mgmt/health${q}`]);
    assert.equal(ok.stderr, '');
    assert.match(ok.stdout, /"ok":true/);
    const v6 = await coapClient(['-m', 'get', `coap://[::1]:${h.port}/mgmt/health${q}`]);
    assert.match(v6.stderr, /^4\.03 source address not in mgmt\.allow_sources/);
    const other = await coapClient(['-a', '127.0.0.2', '-m', 'get', `coap://127.0.0.1:${h.port}/mgmt/health${q}`]);
    assert.match(other.stderr, /^4\.03 /);
    // The list changes live with PUT /mgmt/config: admit ::1 (from ::1, still refused) via 127.0.0.1.
    const cfg = readFileSync(h.configPath, 'utf8').replace('[127.0.0.1/32]', "[127.0.0.1/32, '::1']");
    const put = await coapClient([
      '-m',
      'put',
      '-t',
      '0',
      '-f',
      writeTemp(h, 'allow.yaml', cfg),
      `coap://127.0.0.1:${h.port}/mgmt/config${q}`,
    ]);
    assert.match(put.stdout, /"applied":\["mgmt\.allow_sources"\]/, put.stderr);
    const v6after = await coapClient(['-m', 'get', `coap://[::1]:${h.port}/mgmt/health${q}`]);
    assert.equal(v6after.stderr, '');
    // A hostile block over PUT: 4.00 with its path and line; nothing applied.
    const bad = cfg.replace("[127.0.0.1/32, '::1']", "['127.0.0.1/32\\n0.0.0.0/0']");
    const refused = await coapClient([
      '-m',
      'put',
      '-t',
      '0',
      '-f',
      writeTemp(h, 'bad-allow.yaml', bad),
      `coap://127.0.0.1:${h.port}/mgmt/config${q}`,
    ]);
    assert.match(refused.stderr, /^4\.00 /);
    assert.match(refused.stderr, /"path":"mgmt\.allow_sources\[0\]"/);
    assert.match(refused.stderr, /"line":\d+/);
    assert.equal(readFileSync(h.configPath, 'utf8'), cfg);
    // Ingest from ::1 is still fine: the /mgmt list does not narrow /sensors.
    const post = await coapClient(['-m', 'post', '-t', '50', '-e', '{"v":1}', `coap://[::1]:${h.port}/sensors/m-1`]);
    assert.equal(post.stderr, '');
  });

  it('GET /mgmt/config redacts every secret, the downstream CoAP psk.key included; ctl config set of that copy keeps them', async () => {
    const driver = `drivers:
  - type: coap
    id: tank-3
    enabled: false
    url: coaps://127.0.0.1:9/level
    psk: { identity: gw-1, key: !env EGW_TEST_TANK3_PSK }
uplink: { enabled: false, url: "mqtt://127.0.0.1:1", password: uplink-secret-123 }`;
    process.env['EGW_TEST_TANK3_PSK'] = 'psk-secret-456';
    const h = await startGateway('', (d) =>
      yaml(d, ', host: 127.0.0.1', '', driver).replace('uplink: { enabled: false }\n', ''),
    );
    open.push(h);
    const host = `127.0.0.1:${h.port}`;
    const got = await cli(['ctl', '--host', host, '--token', READ, 'config', 'get']);
    assert.equal(got.code, 0, got.stderr);
    for (const s of [READ, ADMIN, 'uplink-secret-123', 'psk-secret-456']) assert.ok(!got.stdout.includes(s), s);
    const cfg = parseYaml(got.stdout) as { drivers: { psk: { key: string } }[]; mgmt: { admin_token: string } };
    assert.equal(cfg.drivers[0]!.psk.key, '[redacted]');
    assert.equal(cfg.mgmt.admin_token, '[redacted]');
    // Edit the redacted copy (log level) and set it back.
    const edited = join(h.dir, 'edited.yaml');
    writeFileSync(edited, got.stdout.replace('log_level: silent', 'log_level: error'));
    const set = await cli(['ctl', '--host', host, '--token', ADMIN, '--json', 'config', 'set', edited]);
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual((JSON.parse(set.stdout) as { applied: string[] }).applied, ['gateway.log_level']);
    const written = readFileSync(h.configPath, 'utf8');
    assert.ok(!written.includes('[redacted]'), written);
    assert.match(written, /key: !env EGW_TEST_TANK3_PSK/);
    assert.match(written, new RegExp(`admin_token: ${ADMIN}`));
    assert.match(written, /password: uplink-secret-123/);
    // The tokens still work after the round trip.
    const status = await cli(['ctl', '--host', host, '--token', ADMIN, '--json', 'status']);
    assert.equal(status.code, 0, status.stderr);
  });

  it('check-config refuses hostile CIDR strings, each with its path and line', async () => {
    const h = await startGateway('', (d) => yaml(d, ''));
    open.push(h);
    const file = join(h.dir, 'hostile.yaml');
    const lines = [
      'version: 1',
      'coap:',
      '  allow_sources:',
      ...HOSTILE_CIDRS.map((s) => `    - ${JSON.stringify(s)}`),
    ];
    writeFileSync(file, `${lines.join('\n')}\n`);
    const r = await cli(['check-config', file]);
    assert.equal(r.code, 1);
    for (let i = 0; i < HOSTILE_CIDRS.length; i++) {
      assert.match(r.stderr, new RegExp(`coap\\.allow_sources\\[${i}\\]: .* \\(line ${4 + i}\\)`), `entry ${i}`);
    }
  });
});
