// The CoAP contract exercised with an independent client: libcoap's coap-client-notls.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from 'cbor-x';
import { COAP_CONTENT_FORMAT, encodeReading } from '../../src/codec/index.js';
import { ADMIN, configYaml, coapClient, READ, startGateway, type Harness } from './coap-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('CoAP with libcoap coap-client', () => {
  let h: Harness;
  before(async () => {
    h = await startGateway();
  });
  after(async () => {
    await h?.close();
  });

  it('discovery lists resources in RFC 6690 link format with rt, ct, obs and filters by ?rt=', async () => {
    const all = await coapClient(['-m', 'get', h.url('/.well-known/core')]);
    assert.match(all.stdout, /<\/sensors>;rt="edge.sensors"/);
    assert.match(all.stdout, /<\/mgmt\/status>;rt="edge.mgmt.status";ct=50;obs/);
    const filtered = await coapClient(['-m', 'get', h.url('/.well-known/core?rt=edge.mgmt.*')]);
    assert.match(filtered.stdout, /<\/mgmt\/health>/);
    assert.doesNotMatch(filtered.stdout, /<\/sensors>/);
  });

  it('POST of a JSON reading reaches the pipeline and GET returns it as the latest', async () => {
    const post = await coapClient([
      '-m',
      'post',
      '-t',
      '50',
      '-e',
      '{"temperature":21.5,"ts":1700000000000}',
      h.url('/sensors/press-07'),
    ]);
    assert.equal(post.stderr, '');
    const latest = h.gateway.context.latest.get('press-07');
    assert.deepEqual(latest?.values, { temperature: 21.5 });
    assert.equal(latest?.source, 'coap');
    const get = await coapClient(['-m', 'get', h.url('/sensors/press-07')]);
    const body = JSON.parse(get.stdout) as { deviceId: string; ts: number; values: Record<string, number> };
    assert.equal(body.deviceId, 'press-07');
    assert.equal(body.ts, 1700000000000);
    assert.equal(body.values['temperature'], 21.5);
  });

  it('POST of a CBOR reading (ct 60) is decoded the same way', async () => {
    const file = join(h.dir, 'reading.cbor');
    writeFileSync(file, encode({ values: { rpm: 1450, running: true }, quality: 'uncertain' }));
    const post = await coapClient(['-m', 'post', '-t', '60', '-f', file, h.url('/sensors/motor-1')]);
    assert.equal(post.stderr, '');
    const r = h.gateway.context.latest.get('motor-1');
    assert.deepEqual(r?.values, { rpm: 1450, running: true });
    assert.equal(r?.quality, 'uncertain');
  });

  it('POST of a binary-codec reading (its Content-Format) is decoded; another device id is refused', async () => {
    const file = join(h.dir, 'reading.bin');
    writeFileSync(
      file,
      encodeReading({
        deviceId: 'codec-1',
        ts: 1700000000123,
        values: { flow: 3.25 },
        quality: 'good',
        source: 'mqtt',
      }),
    );
    const post = await coapClient([
      '-m',
      'post',
      '-t',
      String(COAP_CONTENT_FORMAT),
      '-f',
      file,
      h.url('/sensors/codec-1'),
    ]);
    assert.equal(post.stderr, '');
    assert.deepEqual(h.gateway.context.latest.get('codec-1')?.values, { flow: 3.25 });
    const wrong = await coapClient([
      '-m',
      'post',
      '-t',
      String(COAP_CONTENT_FORMAT),
      '-f',
      file,
      h.url('/sensors/other-1'),
    ]);
    assert.match(wrong.stderr, /^4\.00 reading for device codec-1/);
  });

  it('bad payloads get 4.00 with a reason, unknown formats 4.15, bad device ids 4.00', async () => {
    const bad = await coapClient(['-m', 'post', '-t', '50', '-e', '{"temperature":[21]}', h.url('/sensors/dev-x')]);
    assert.match(bad.stderr, /^4\.00 temperature: arrays are not values/);
    const ts = await coapClient(['-m', 'post', '-t', '50', '-e', '{"t":1,"ts":"1"}', h.url('/sensors/dev-x')]);
    assert.match(ts.stderr, /^4\.00 ts must be/);
    const xml = await coapClient(['-m', 'post', '-t', '41', '-e', '<r/>', h.url('/sensors/dev-x')]);
    assert.match(xml.stderr, /^4\.15 /);
    const id = await coapClient(['-m', 'post', '-t', '50', '-e', '{"a":1}', h.url('/sensors/bad%20id')]);
    assert.match(id.stderr, /^4\.00 device id not allowed/);
  });

  it('observe delivers a notification for each new reading (at least 3)', async () => {
    const obs = spawn('coap-client-notls', ['-s', '5', '-m', 'get', h.url('/sensors/obs-1')]);
    let out = '';
    obs.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => obs.once('exit', r));
    try {
      for (let i = 0; i < 50 && !out.includes('pending'); i++) await sleep(50);
      for (let i = 0; i < 4; i++) {
        await coapClient(['-m', 'post', '-t', '50', '-e', `{"seq":${i}}`, h.url('/sensors/obs-1')]);
      }
      for (let i = 0; i < 100 && !out.includes('"seq":3'); i++) await sleep(50);
    } finally {
      obs.kill('SIGINT');
      await exited;
    }
    const seqs = [...out.matchAll(/"seq":(\d+)/g)].map((m) => Number(m[1]));
    assert.ok(seqs.length >= 3, `got ${seqs.length} notifications: ${out}`);
    assert.deepEqual(seqs.slice(0, 4), [0, 1, 2, 3]);
  });

  it('block-wise: a >4 KB body is sent with Block1 and read back with Block2', async () => {
    const values: Record<string, number> = {};
    for (let i = 0; i < 250; i++) values[`channel_${String(i).padStart(3, '0')}`] = i * 1.25;
    const body = JSON.stringify({ values });
    assert.ok(body.length > 4096);
    const post = await coapClient(['-m', 'post', '-t', '50', '-b', '1024', '-e', body, h.url('/sensors/big-1')]);
    assert.equal(post.stderr, '');
    const get = await coapClient(['-m', 'get', '-b', '512', h.url('/sensors/big-1')]);
    assert.ok(get.stdout.length > 4096, `representation is ${get.stdout.length} bytes`);
    assert.equal(Object.keys((JSON.parse(get.stdout) as { values: object }).values).length, 250);
  });

  it('management: no token 4.01, wrong token 4.01, read token on a write 4.03, read token GET 2.05', async () => {
    assert.match((await coapClient(['-m', 'get', h.url('/mgmt/status')])).stderr, /^4\.01 /);
    assert.match((await coapClient(['-m', 'get', h.url('/mgmt/status?token=nope')])).stderr, /^4\.01 /);
    assert.match((await coapClient(['-m', 'post', h.url(`/mgmt/restart?token=${READ}`)])).stderr, /^4\.03 /);
    const status = JSON.parse((await coapClient(['-m', 'get', h.url(`/mgmt/status?token=${READ}`)])).stdout) as {
      gatewayId: string;
      services: Record<string, string>;
    };
    assert.equal(status.gatewayId, 'gw-test');
    assert.equal(status.services['coap'], 'listening');
    assert.equal(h.restarts.length, 0);
  });

  it('admin PUT of an invalid config → 4.00 with every error; the file is unchanged', async () => {
    const before = readFileSync(h.configPath, 'utf8');
    const file = join(h.dir, 'bad.yaml');
    writeFileSync(file, 'version: 1\ngateway:\n  log_level: loud\n  bogus: 1\ncoap:\n  port: 70000\n');
    const r = await coapClient(['-m', 'put', '-t', '0', '-f', file, h.url(`/mgmt/config?token=${ADMIN}`)]);
    assert.match(r.stderr, /^4\.00 /);
    const errors = (JSON.parse(r.stderr.slice(5)) as { errors: { path: string; line: number }[] }).errors;
    assert.deepEqual(errors.map((e) => e.path).sort(), ['coap.port', 'gateway.bogus', 'gateway.log_level']);
    assert.ok(errors.every((e) => typeof e.line === 'number'));
    assert.equal(readFileSync(h.configPath, 'utf8'), before);
    assert.equal(existsSync(`${h.configPath}.bak`), false);
  });

  it('admin PUT of a valid config is applied live, persisted atomically with a backup, visible in GET and audited', async () => {
    const before = readFileSync(h.configPath, 'utf8');
    const next = configYaml(join(h.dir, 'data'), '')
      .replace('log_level: warn', 'log_level: error')
      .replace('port: 0', 'port: 0\n  max_observers: 50');
    const file = join(h.dir, 'good.yaml');
    writeFileSync(file, next);
    const r = await coapClient(['-m', 'put', '-t', '0', '-f', file, h.url(`/mgmt/config?token=${ADMIN}`)]);
    const answer = JSON.parse(r.stdout) as { applied: string[]; restartRequired: string[] };
    assert.deepEqual(answer.applied, ['gateway.log_level']);
    assert.deepEqual(answer.restartRequired, ['coap.max_observers']);
    assert.equal(readFileSync(h.configPath, 'utf8'), next);
    assert.equal(readFileSync(`${h.configPath}.bak`, 'utf8'), before);
    assert.equal(h.gateway.context.log.level, 'error');
    const get = JSON.parse((await coapClient(['-m', 'get', h.url(`/mgmt/config?token=${READ}`)])).stdout) as {
      gateway: { log_level: string };
      coap: { max_observers: number };
      mgmt: { admin_token: string };
    };
    assert.equal(get.gateway.log_level, 'error');
    assert.equal(get.coap.max_observers, 50);
    assert.equal(get.mgmt.admin_token, '[redacted]');
    const audit = JSON.parse((await coapClient(['-m', 'get', h.url(`/mgmt/audit?token=${READ}`)])).stdout) as {
      entries: { resource: string; outcome: string; code: string; source: string }[];
    };
    const puts = audit.entries.filter((e) => e.resource === '/mgmt/config');
    assert.deepEqual(
      puts.map((e) => e.outcome),
      ['ok', 'refused'],
    );
    assert.ok(audit.entries.some((e) => e.resource === '/mgmt/restart' && e.outcome === 'forbidden'));
    assert.ok(!JSON.stringify(audit).includes(ADMIN));
  });
});
