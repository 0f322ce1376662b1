import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import mqtt from 'mqtt';
import { BrokerService } from '../../../src/broker/broker.js';
import { checkAgainstModules, MODULES } from '../../../src/capability/modules.js';
import type { CapabilityModule } from '../../../src/capability/types.js';
import type { CommandHandler } from '../../../src/commands/router.js';
import { CoapServer } from '../../../src/coap/server.js';
import { ConfigError, parseConfig } from '../../../src/config/load.js';
import type { Driver, DriverContext, DriverType } from '../../../src/drivers/types.js';
import { Gateway } from '../../../src/gateway.js';
import { createLogger } from '../../../src/log/logger.js';

const log = createLogger({ level: 'silent' });
const run = promisify(execFile);

/** libcoap's client, async: the server under test runs in this very process. */
async function coapClient(url: string, args: string[] = ['-m', 'get']): Promise<string> {
  try {
    const r = await run('coap-client-notls', [...args, url], { timeout: 10000 });
    return r.stdout + r.stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return (e.stdout ?? '') + (e.stderr ?? '');
  }
}
const READ = 'r'.repeat(32);
const ADMIN = 'a'.repeat(32);
/** Commands the x-foo driver executed, in order. */
const driverCommands: unknown[] = [];

/** A plugin-style driver type: `x-foo`, options checked against its schema, one device it can command. */
const fooType: DriverType<{ id: string; type: string; options: { value: number } }> = {
  type: 'x-foo',
  schema: Type.Object({ value: Type.Number({ default: 1 }) }),
  source: 'plugin',
  transport: 'serial',
  create(c, ctx: DriverContext): Driver {
    let timer: NodeJS.Timeout | undefined;
    return {
      async start() {
        ctx.setConnected(true);
        timer = setInterval(() => ctx.emit([{ values: { value: c.options.value }, quality: 'good' }]), 20);
      },
      async stop() {
        clearInterval(timer);
      },
      devices: () => [c.id],
      command: async (_id, payload) => {
        driverCommands.push(payload);
        return { ok: true, detail: { echo: payload as never } };
      },
    };
  },
};

const handler: CommandHandler = {
  name: 'foo-commands',
  ownsDevice: (id) => id === 'foo-cmd',
  handleCommand: async (id, body) => ({ ok: true, detail: { id, body: body as never } }),
};

const fooModule: CapabilityModule = {
  name: 'foo',
  enabled: () => true,
  driverTypes: () => [fooType],
  build: (_ctx, db) => {
    assert.equal(db, undefined, 'a module that owns no tables never gets the database handle');
    return {
      mgmt: {
        resources: { plugins: () => ({ plugins: [{ name: 'foo' }] }) },
        views: { foo: { rt: 'edge.mgmt.foo', get: () => ({ foo: 1 }) } },
      },
      commands: [handler],
    };
  },
};

function configText(dir: string): string {
  return [
    'version: 1',
    'gateway:',
    `  data_dir: ${dir}`,
    'metrics: { enabled: false }',
    'broker: { host: 127.0.0.1, port: 0 }',
    `coap: { host: 127.0.0.1, port: 0 }`,
    `mgmt: { read_token: ${READ}, admin_token: ${ADMIN} }`,
    'uplink: { enabled: false }',
    'drivers:',
    '  - { type: x-foo, id: foo-1, options: { value: 5 } }',
    'analytics:',
    '  rules:',
    '    - { name: foo-high, devices: foo-1, value: value, when: { above: 3 }, on_raise: { payload: { cool: 1 } } }',
  ].join('\n');
}

function config(dir: string) {
  return parseConfig(configText(dir), 'test', {});
}

test('the root walks the module list: services, driver types, mgmt entries and command handlers registered', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-mod-'));
  const at = MODULES.findIndex((m) => m.name === 'drivers');
  const modules = [...MODULES.slice(0, at), fooModule, ...MODULES.slice(at)]; // just before drivers
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(configPath, configText(dir));
  const gateway = new Gateway({ config: config(dir), configPath, log, env: {}, modules });
  t.after(async () => {
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.deepEqual(
    gateway.modules.map((m) => m.name),
    ['queue', 'broker', 'publisher', 'device-status', 'history', 'analytics', 'coap', 'foo', 'drivers', 'ota'],
    'enabled modules in list order (uplink and metrics are off)',
  );
  assert.ok(gateway.driverTypes.get('x-foo'), 'the module driver type is in the registry');
  assert.ok(gateway.driverTypes.get('simulated'), 'built-in types come from the drivers module');
  assert.deepEqual(gateway.commands.names(), ['foo-commands', 'drivers']);
  assert.deepEqual(gateway.mgmt.get('plugins')?.(), { plugins: [{ name: 'foo' }] });
  assert.deepEqual(
    gateway.mgmt.views().map(([n]) => n),
    ['foo'],
  );
  assert.ok(gateway.mgmt.get('alerts'), '/mgmt/alerts resource from the analytics module');
  assert.ok(gateway.provided.outbox && gateway.provided.broker && gateway.provided.publisher);
  await gateway.start();

  // x-foo is instantiated from the registry and produces readings.
  for (let i = 0; i < 200 && !gateway.context.latest.get('foo-1'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(gateway.context.latest.get('foo-1')?.values['value'], 5);

  // Commands over MQTT reach the module's handler and the driver (routing left gateway.ts).
  const broker = gateway.services.find((s) => s instanceof BrokerService) as BrokerService;
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0 });
  const results = new Map<string, unknown[]>();
  c.on('message', (topic, payload) =>
    results.set(topic, [...(results.get(topic) ?? []), JSON.parse(payload.toString())]),
  );
  await c.subscribeAsync('devices/+/command_result', { qos: 1 });
  await c.publishAsync('commands/foo-cmd', '{"go":1}', { qos: 1 });
  await c.publishAsync('commands/foo-1', '{"set":2}', { qos: 1 });
  await c.publishAsync('commands/foo-cmd', 'not json', { qos: 1 });
  await c.publishAsync('commands/nobody', '{"x":1}', { qos: 1 });
  for (let i = 0; i < 200 && results.size < 2; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(
    results.get('devices/foo-1/command_result')?.filter((r) => JSON.stringify(r).includes('set')),
    [{ ok: true, detail: { echo: { set: 2 } } }],
  );
  // Both answered (in whatever order the handler finished): the JSON one handled, the other refused.
  for (let i = 0; i < 200 && (results.get('devices/foo-cmd/command_result')?.length ?? 0) < 2; i++)
    await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(
    results.get('devices/foo-cmd/command_result')?.sort((a, b) => JSON.stringify(b).localeCompare(JSON.stringify(a))),
    [
      { ok: true, detail: { id: 'foo-cmd', body: { go: 1 } } },
      { ok: false, error: 'command payload is not JSON' },
    ],
  );
  assert.equal(results.has('devices/nobody/command_result'), false, 'no handler owns it: left alone');
  await c.endAsync();

  // The analytics module (fed by committed readings) raised its alert through the publisher, into
  // the outbox as CRITICAL (default rule alerts/# → CRITICAL).
  const critical = () => gateway.mgmt.get('queues')?.().classes.CRITICAL.depth ?? 0;
  for (let i = 0; i < 300 && critical() === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(critical() >= 1, 'the alert is committed for the cloud as CRITICAL');
  // Its command (on_raise, commands/foo-1) reached the x-foo driver through the command router.
  for (let i = 0; i < 300 && !driverCommands.length; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(driverCommands[0], { cool: 1 });
  // GET /mgmt/alerts shows it; an admin acknowledges it by id; a read token may not.
  const coapA = gateway.services.find((s) => s instanceof CoapServer) as CoapServer;
  const mg = `coap://127.0.0.1:${coapA.port}/mgmt`;
  const view = JSON.parse(await coapClient(`${mg}/alerts?token=${READ}`)) as {
    active: { id: string; state: string }[];
  };
  assert.equal(view.active.length, 1);
  const alertId = view.active[0]!.id;
  assert.match(
    await coapClient(`${mg}/alerts?token=${READ}&id=${encodeURIComponent(alertId)}`, ['-m', 'post']),
    /4\.03/,
  );
  assert.match(await coapClient(`${mg}/alerts?token=${ADMIN}&id=nope`, ['-m', 'post']), /4\.04/);
  assert.match(
    await coapClient(`${mg}/alerts?token=${ADMIN}&id=${encodeURIComponent(alertId)}`, ['-m', 'post']),
    /"state":"acknowledged"/,
  );

  // The view is served as GET /mgmt/foo (read token), with a real CoAP client.
  const coap = gateway.services.find((s) => s instanceof CoapServer) as CoapServer;
  const base = `coap://127.0.0.1:${coap.port}/mgmt`;
  assert.match(await coapClient(`${base}/foo?token=${READ}`), /\{"foo":1\}/);
  assert.match(await coapClient(`${base}/plugins?token=${READ}`), /"name":"foo"/);
  // /mgmt/ota is filled by the OTA module (idle: no channel configured).
  assert.match(await coapClient(`${base}/ota?token=${READ}`), /"running":"[^"]+"/);
  assert.match(await coapClient(`${base}/foo`), /4\.01/);

  // PUT /mgmt/config runs the same module check as check-config: a type nobody registers is refused.
  const next = join(dir, 'next.yaml');
  writeFileSync(next, configText(dir).replace('type: x-foo', 'type: x-bar'));
  const put = await coapClient(`${base}/config?token=${ADMIN}`, ['-m', 'put', '-f', next]);
  assert.match(put, /4\.00/);
  assert.match(put, /drivers\[0\]\.type/);
  assert.equal(readFileSync(configPath, 'utf8'), configText(dir), 'the file is not touched');
});

test('an x- driver type no module registers is a config error, at the root and in checkAgainstModules', () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-mod-'));
  try {
    const cfg = config(dir);
    const issues = checkAgainstModules(cfg);
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.path, 'drivers[0].type');
    assert.match(issues[0]!.message, /driver type "x-foo" is not registered/);
    assert.throws(
      () => new Gateway({ config: cfg, log, env: {} }),
      (err: unknown) => err instanceof ConfigError && /drivers\[0\]\.type/.test(err.message),
    );
    // A disabled entry never starts: not an error.
    assert.deepEqual(checkAgainstModules({ ...cfg, drivers: [{ ...cfg.drivers[0]!, enabled: false }] }), []);
    // Registered by a module: fine.
    assert.deepEqual(checkAgainstModules(cfg, [...MODULES, fooModule]), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config checks get the YAML line of their path', () => {
  const text = ['version: 1', 'drivers:', '  - type: simulated', '    id: s1', '  - type: x-bar', '    id: b1'].join(
    '\n',
  );
  assert.throws(
    () => parseConfig(text, 'test.yaml', {}, (c) => checkAgainstModules(c)),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.issues.length === 1 &&
      err.issues[0]!.path === 'drivers[1].type' &&
      err.issues[0]!.line === 5,
  );
});
