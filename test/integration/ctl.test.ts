// `edge-gateway ctl` (node-coap-client) as a user runs it: the built CLI against a running gateway.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, coapClient, configYaml, READ, startGateway, type Harness } from './coap-harness.js';

const MAIN = new URL('../../src/main.js', import.meta.url).pathname;

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, 'ctl', ...args],
      { env: { ...process.env, EDGE_GATEWAY_TOKEN: '', ...env }, timeout: 20000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 99) : 0, stdout, stderr });
      },
    );
  });
}

describe('edge-gateway ctl', () => {
  let h: Harness;
  let host: string;
  before(async () => {
    // OTA off: this suite checks the 5.01 answer of a gateway without the capability.
    h = await startGateway('ota:\n  enabled: false\n');
    host = `127.0.0.1:${h.port}`;
  });
  after(async () => {
    await h?.close();
  });

  it('status --json with --token; human output by default with the token from the environment', async () => {
    const j = await run(['--host', host, '--token', READ, '--json', 'status']);
    assert.equal(j.code, 0, j.stderr);
    assert.equal((JSON.parse(j.stdout) as { gatewayId: string }).gatewayId, 'gw-test');
    const human = await run(['--host', host, 'status'], { EDGE_GATEWAY_TOKEN: READ });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^gatewayId: gw-test$/m);
  });

  it('without a token: exit 1 and the 4.01 reason', async () => {
    const r = await run(['--host', host, 'health']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^4\.01 /);
  });

  it('health, devices, queues and config get answer', async () => {
    await coapClient(['-m', 'post', '-t', '50', '-e', '{"v":1}', h.url('/sensors/ctl-dev')]);
    const health = await run(['--host', host, '--token', READ, '--json', 'health']);
    assert.equal(health.code, 0, health.stderr);
    const devices = await run(['--host', host, '--token', READ, '--json', 'devices']);
    assert.ok((JSON.parse(devices.stdout) as { devices: { id: string }[] }).devices.some((d) => d.id === 'ctl-dev'));
    assert.equal((await run(['--host', host, '--token', READ, 'queues'])).code, 0);
    const cfg = await run(['--host', host, '--token', READ, '--json', 'config', 'get']);
    assert.equal((JSON.parse(cfg.stdout) as { mgmt: { read_token: string } }).mgmt.read_token, '[redacted]');
  });

  it('config validate checks a file locally; config set applies a valid one and refuses an invalid one', async () => {
    const bad = join(h.dir, 'bad.yaml');
    writeFileSync(bad, 'version: 1\ngateway:\n  log_level: chatty\n');
    const v = await run(['config', 'validate', bad]);
    assert.equal(v.code, 1);
    assert.match(v.stderr, /gateway\.log_level: must be one of .* \(line 3\)/);
    const before = readFileSync(h.configPath, 'utf8');
    const refused = await run(['--host', host, '--token', ADMIN, 'config', 'set', bad]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^4\.00 /);
    assert.equal(readFileSync(h.configPath, 'utf8'), before);
    const good = join(h.dir, 'good.yaml');
    writeFileSync(good, configYaml(join(h.dir, 'data')).replace('log_level: warn', 'log_level: error'));
    assert.equal((await run(['config', 'validate', good])).code, 0);
    const set = await run(['--host', host, '--token', ADMIN, '--json', 'config', 'set', good]);
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual((JSON.parse(set.stdout) as { applied: string[] }).applied, ['gateway.log_level']);
    assert.equal(readFileSync(h.configPath, 'utf8'), readFileSync(good, 'utf8'));
  });

  it('watch status prints notifications as the status changes', async () => {
    const watching = run(['--host', host, '--token', READ, '--json', '--count', '2', 'watch', 'status']);
    // A new reading changes the pipeline counters: the next status tick notifies.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 700));
      await coapClient(['-m', 'post', '-t', '50', '-e', `{"v":${i}}`, h.url('/sensors/watch-dev')]);
    }
    const r = await watching;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 2);
  });

  it('devices ID, audit and human times (ISO dates with ages)', async () => {
    await coapClient(['-m', 'post', '-t', '50', '-e', '{"t":20.5}', h.url('/sensors/ctl-one')]);
    const one = await run(['--host', host, '--token', READ, 'devices', 'ctl-one']);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^lastSeen: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((now|\d+ s ago)\)$/m);
    assert.match(one.stdout, /^ {4}t: 20\.5$/m);
    const table = await run(['--host', host, '--token', READ, 'devices']);
    assert.match(table.stdout, /^ID +TRANSPORT +STATE +LAST SEEN/);
    assert.match(table.stdout, /^ctl-one +coap +online +\d{4}-/m);
    assert.equal((await run(['--host', host, '--token', READ, 'devices', 'bad/id'])).code, 2);
    const missing = await run(['--host', host, '--token', READ, 'devices', 'nobody']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^4\.04 /);
    // A refused write is audited; audit lists it with its time.
    await run(['--host', host, '--token', READ, 'restart']);
    const audit = await run(['--host', host, '--token', READ, 'audit']);
    assert.equal(audit.code, 0, audit.stderr);
    assert.match(audit.stdout, /^TIME +SOURCE +REQUEST +OUTCOME +CODE/);
    assert.match(audit.stdout, /Z \((now|\d+ s ago)\) +127\.0\.0\.1:\d+ +POST \/mgmt\/restart +forbidden +4\.03/);
    const j = await run(['--host', host, '--token', READ, '--json', '--limit', '1', 'audit']);
    assert.equal((JSON.parse(j.stdout) as { entries: unknown[] }).entries.length, 1);
  });

  it('tail follows readings live (observe /sensors/ID), by id and for every device', async () => {
    await coapClient(['-m', 'post', '-t', '50', '-e', '{"t":1}', h.url('/sensors/tail-a')]);
    let finished = 0;
    const byId = run(['--host', host, '--count', '3', 'tail', 'tail-a']).finally(() => finished++);
    const all = run(['--host', host, '--count', '6', '--json', 'tail']).finally(() => finished++);
    // New readings until both have seen enough (each starts with the current reading of each device).
    for (let i = 2; i <= 60 && finished < 2; i++) {
      await new Promise((r) => setTimeout(r, 250));
      await coapClient(['-m', 'post', '-t', '50', '-e', `{"t":${i}}`, h.url('/sensors/tail-a')]);
    }
    const r = await byId;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT[\d:.]+Z {2}tail-a {2}t=\d+$/);
    const ts = lines.map((l) => Number(/t=(\d+)$/.exec(l)![1]));
    assert.ok(ts[0]! < ts[1]! && ts[1]! < ts[2]!, `not live, in order: ${ts.join(',')}`);
    const a = await all;
    assert.equal(a.code, 0, a.stderr);
    const readings = a.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { deviceId: string; values: { t?: number } });
    assert.equal(readings.length, 6);
    // Other devices of this suite appear with their current reading; tail-a also with new ones.
    assert.ok(readings.filter((x) => x.deviceId === 'tail-a').length >= 2, a.stdout);
    assert.ok(new Set(readings.map((x) => x.deviceId)).size >= 2, a.stdout);
    assert.equal((await run(['--host', host, 'tail', '../x'])).code, 2);
  });

  it('ota without the OTA capability answers 5.01; restart with the admin token asks for a restart', async () => {
    const ota = await run(['--host', host, '--token', ADMIN, 'ota', 'check']);
    assert.equal(ota.code, 1);
    assert.match(ota.stderr, /^5\.01 /);
    assert.equal((await run(['--host', host, '--token', READ, 'restart'])).code, 1);
    const r = await run(['--host', host, '--token', ADMIN, 'restart']);
    assert.equal(r.code, 0, r.stderr);
    for (let i = 0; i < 40 && h.restarts.length === 0; i++) await new Promise((res) => setTimeout(res, 50));
    assert.equal(h.restarts.length, 1);
  });

  it('the ctl process does not load node-dtls-client (plain coap:// only; start-up time)', async () => {
    const probe = join(h.dir, 'probe.cjs');
    writeFileSync(
      probe,
      `const { dirname } = require('node:path');
       const r = require('node:module').createRequire(${JSON.stringify(MAIN)});
       const p = r.resolve('node-dtls-client', { paths: [dirname(r.resolve('node-coap-client/package.json'))] });
       process.on('exit', () => process.stderr.write('dtls=' + (require.cache[p] ? require.cache[p].exports.dtls.Socket.name : 'none') + '\\n'));`,
    );
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--require', probe, MAIN, 'ctl', '--host', host, '--token', READ, 'status'],
        { timeout: 20000 },
        (err, _stdout, stderr) => resolve({ code: err ? 1 : 0, stderr }),
      );
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /dtls=DtlsUnavailable/);
  });

  it('no gateway at the address: exit 3 after the timeout', async () => {
    const r = await run(['--host', '127.0.0.1:9', '--token', READ, '--timeout', '500', 'status']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /no answer/);
  });
});
