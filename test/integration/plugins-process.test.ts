// Plugins in the built gateway as a process: a crash loop (an inline plugin freezing the event
// loop, killed with SIGKILL as the systemd watchdog would) ends in safe mode at the next start;
// `edge-gateway ctl plugins` lists, disables, reloads and releases over CoAP /mgmt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayProcess, MAIN, tempDir } from '../helpers/gateway-process.js';
import { FIXTURES, freeUdpPort, sleep, until } from './plugins-harness.js';

function ctl(args: string[], token: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, 'ctl', '--timeout', '20000', '--token', token, ...args],
      { env: { ...process.env, EDGE_GATEWAY_TOKEN: '' }, timeout: 30000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 99) : 0, stdout, stderr }),
    );
  });
}

function config(dir: string, coapPort: number, plugins: string): string {
  return `version: 1
gateway: { id: gw-pp, data_dir: ${JSON.stringify(dir)}, log_level: info, shutdown_timeout_ms: 5000 }
metrics: { port: 0 }
broker: { enabled: false }
coap: { host: 127.0.0.1, port: ${coapPort} }
ota: { enabled: false }
plugins:
  enabled: true
  dir: ${JSON.stringify(FIXTURES)}
  safe_mode: { crash_starts: 3, healthy_after_s: 30 }
  plugins:
${plugins}
`;
}

const starts = (dir: string) => {
  try {
    return (JSON.parse(readFileSync(join(dir, 'plugins-starts.json'), 'utf8')) as { starts: number }).starts;
  } catch {
    return 0;
  }
};

test('crash loop → safe mode: the next start loads no plugin and says so (log, /mgmt/plugins, health)', async (t) => {
  const tmp = tempDir('egw-plugins-sm-');
  t.after(() => tmp.cleanup());
  const coapPort = await freeUdpPort();
  const file = tmp.file('gw.yaml', config(tmp.dir, coapPort, '    - { name: freezer }\n    - { name: good }'));
  for (let i = 1; i <= 3; i++) {
    const gw = new GatewayProcess(['--config', file]);
    await gw.waitForLog((l) => l.msg === 'plugin ready' && l['plugin'] === 'freezer');
    await until(() => starts(tmp.dir) === i, 5000, `start ${i} counted`);
    await sleep(400); // frozen now
    assert.equal(await gw.stop('SIGKILL'), 'SIGKILL');
  }
  const gw = new GatewayProcess(['--config', file]);
  t.after(() => gw.stop());
  const line = await gw.waitForLog((l) => l['code'] === 'EGW_PLUGIN_SAFE_MODE');
  assert.match(line.msg, /SAFE MODE/);
  await gw.ready();
  const tokens = JSON.parse(readFileSync(join(tmp.dir, 'mgmt-tokens.json'), 'utf8')) as { read: string; admin: string };
  const host = `127.0.0.1:${coapPort}`;
  const list = await ctl(['--host', host, '--json', 'plugins'], tokens.read);
  assert.equal(list.code, 0, list.stderr);
  const doc = JSON.parse(list.stdout) as { safeMode: boolean; plugins: { name: string; state: string }[] };
  assert.equal(doc.safeMode, true);
  assert.deepEqual(
    doc.plugins.map((p) => p.state),
    ['stopped', 'stopped'],
  );
  const health = await ctl(['--host', host, '--json', 'health'], tokens.read);
  assert.match(health.stdout, /safe-mode/);
  // An operator loads one plugin by hand while in safe mode.
  const reload = await ctl(['--host', host, '--json', 'plugins', 'reload', 'good'], tokens.admin);
  assert.equal(reload.code, 0, reload.stderr);
  assert.equal((JSON.parse(reload.stdout) as { state: string }).state, 'ready');
  assert.equal(await gw.stop(), 0);
  assert.equal(starts(tmp.dir), 0, 'a clean stop clears the crash counter');
});

test('ctl plugins: list, disable, reload with new config from the file, refused for the read token', async (t) => {
  const tmp = tempDir('egw-plugins-ctl-');
  t.after(() => tmp.cleanup());
  const coapPort = await freeUdpPort();
  const file = tmp.file('gw.yaml', config(tmp.dir, coapPort, '    - { name: counter, config: { gen: 1 } }'));
  const gw = new GatewayProcess(['--config', file]);
  t.after(() => gw.stop());
  await gw.ready();
  const tokens = JSON.parse(readFileSync(join(tmp.dir, 'mgmt-tokens.json'), 'utf8')) as { read: string; admin: string };
  const host = `127.0.0.1:${coapPort}`;
  const human = await ctl(['--host', host, 'plugins'], tokens.read);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /counter/);
  assert.match(human.stdout, /ready/);
  const refused = await ctl(['--host', host, 'plugins', 'disable', 'counter'], tokens.read);
  assert.notEqual(refused.code, 0);
  const off = await ctl(['--host', host, '--json', 'plugins', 'disable', 'counter'], tokens.admin);
  assert.equal((JSON.parse(off.stdout) as { state: string }).state, 'disabled');
  const unknown = await ctl(['--host', host, 'plugins', 'reload', 'nope'], tokens.admin);
  assert.notEqual(unknown.code, 0);
  tmp.file('gw.yaml', config(tmp.dir, coapPort, '    - { name: counter, config: { gen: 2 }, hook_budget_ms: 7 }'));
  const on = await ctl(['--host', host, '--json', 'plugins', 'reload', 'counter'], tokens.admin);
  const v = JSON.parse(on.stdout) as { state: string; generation: number; hookBudgetMs: number };
  assert.equal(v.state, 'ready');
  assert.equal(v.hookBudgetMs, 7, 'the entry was read again from the file');
  assert.equal(v.generation, 2);
});
