// Plugins end to end with real sockets: a gateway in-process, readings in over MQTT (mqtt.js),
// plugin fixtures under test/fixtures/plugins (each misbehaving in one documented way).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { coapClient } from './coap-harness.js';
import { startGateway, cleanup, until, sleep } from './plugins-harness.js';

const entry = (name: string, extra = '') => `    - { name: ${name}${extra ? `, ${extra}` : ''} }`;

test('a good plugin: annotate before commit, observe after, publish, command, kv, CoAP resource', async (t) => {
  const h = await startGateway(`  plugins:\n${entry('good', 'config: { tag: t1 }')}`, { coap: true });
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${h.mqttPort}`, { clientId: 'dev-1' });
  t.after(async () => {
    await dev.endAsync();
    await h.stop();
    cleanup(h.dir);
  });
  assert.equal(h.state('good'), 'ready');
  assert.equal(h.view('good')['version'], '1.2.3');
  const got: { topic: string; body: Record<string, unknown> }[] = [];
  dev.on('message', (topic, p) => got.push({ topic, body: JSON.parse(p.toString()) as Record<string, unknown> }));
  await dev.subscribeAsync(['sensors/+/data', 'site/#', 'commands/#'], { qos: 1 });
  await dev.publishAsync('sensors/dev-1/data', JSON.stringify({ t: 60 }), { qos: 1 });
  await until(() => got.find((m) => m.topic === 'sensors/dev-1/data'), 5000, 'reading');
  // The annotation is part of the committed reading (latest-value cache, outbox), not of the device's own message.
  const latest = await until(() => h.gw.context.latest.get('dev-1'), 5000, 'latest value');
  assert.equal(latest.values['t_f'], 140);
  const seen = await until(() => got.find((m) => m.topic === 'site/dev-1/seen'), 5000, 'plugin publish');
  assert.deepEqual(seen.body, { n: 1, tag: 't1' });
  const cmd = await until(() => got.find((m) => m.topic === 'commands/dev-1'), 5000, 'plugin command');
  assert.deepEqual(cmd.body, { fan: 'on' });
  const r = await coapClient(['-m', 'get', `coap://127.0.0.1:${h.coapPort}/plugins/good/count`]);
  assert.equal(r.stdout.trim(), '1');
});

test('wrong apiVersion, undeclared capability and bad config are refused at load; the gateway serves', async (t) => {
  const h = await startGateway(
    `  plugins:\n${entry('old-api')}\n${entry('sneaky')}\n${entry('badconfig')}\n${entry('slow-setup')}\n${entry('good')}\n  setup_timeout_ms: 300`,
  );
  t.after(async () => {
    await h.stop();
    cleanup(h.dir);
  });
  assert.equal(h.state('old-api'), 'failed');
  const e1 = h.view('old-api')['lastError'] as { code: string; message: string };
  assert.equal(e1.code, 'EGW_PLUGIN_API_VERSION');
  assert.match(e1.message, /built for plugin API \^0\.9\.0; this gateway implements 1\.0\.0/);
  assert.equal(h.state('sneaky'), 'failed');
  const e2 = h.view('sneaky')['lastError'] as { code: string; message: string };
  assert.equal(e2.code, 'EGW_PLUGIN_CAPABILITY');
  assert.match(e2.message, /did not declare capability publish for topic commands\/boiler-1/);
  assert.equal(h.state('badconfig'), 'failed');
  assert.equal((h.view('badconfig')['lastError'] as { code: string }).code, 'EGW_PLUGIN_CONFIG');
  assert.equal(h.state('slow-setup'), 'failed');
  assert.match(
    (h.view('slow-setup')['lastError'] as { message: string }).message,
    /setup did not finish within 300 ms/,
  );
  assert.equal(h.state('good'), 'ready');
});

test('a plugin that is not ready is retried with backoff until ready', async (t) => {
  const h = await startGateway(`  plugins:\n${entry('notready')}\n  retry: { min_ms: 50, max_ms: 200 }`);
  t.after(async () => {
    await h.stop();
    cleanup(h.dir);
  });
  assert.equal(h.state('notready'), 'retrying');
  await until(() => h.state('notready') === 'ready', 5000, 'ready after retries');
});

test('throwing and never-resolving plugins are quarantined; data path intact; quarantine survives a restart until released', async (t) => {
  const plugins = `  plugins:\n${entry('thrower')}\n${entry('hanger')}\n${entry('good')}\n  quarantine_after: 20\n  hook_budget_ms: 50`;
  const h = await startGateway(plugins);
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${h.mqttPort}`, { clientId: 'dev-2' });
  let received = 0;
  dev.on('message', () => received++);
  await dev.subscribeAsync('sensors/+/data', { qos: 1 });
  for (let i = 0; i < 60; i++) await dev.publishAsync('sensors/dev-2/data', JSON.stringify({ t: i % 40 }), { qos: 1 });
  await until(() => received >= 60, 5000, 'every reading delivered');
  await until(() => h.state('thrower') === 'quarantined' && h.state('hanger') === 'quarantined', 5000, 'quarantine');
  assert.ok(Number(h.view('thrower')['errors']) >= 20);
  assert.ok(Number(h.view('hanger')['timeouts']) >= 20);
  assert.equal(h.state('good'), 'ready');
  // Annotations of the healthy plugin kept going while the thrower threw.
  await dev.endAsync();
  await h.stop();
  const h2 = await startGateway(plugins, { dir: h.dir });
  t.after(async () => {
    await h2.stop();
    cleanup(h.dir);
  });
  assert.equal(h2.state('thrower'), 'quarantined');
  assert.equal(h2.state('hanger'), 'quarantined');
  assert.equal((h2.view('thrower')['lastError'] as { code: string }).code, 'EGW_PLUGIN_QUARANTINED');
  const released = await h2.gw.mgmt.get('pluginActions')!.act('release', 'thrower');
  assert.equal(released?.['state'], 'ready');
});

test('an inline hook blocking 2 s is reported and quarantined; the gateway keeps serving', async (t) => {
  const h = await startGateway(`  plugins:\n${entry('blocker')}\n  quarantine_after: 2`);
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${h.mqttPort}`, { clientId: 'dev-3' });
  t.after(async () => {
    await dev.endAsync();
    await h.stop();
    cleanup(h.dir);
  });
  for (let i = 0; i < 2; i++) await dev.publishAsync('sensors/dev-3/data', JSON.stringify({ t: i }), { qos: 1 });
  assert.equal(h.state('blocker'), 'quarantined');
  assert.equal(Number(h.view('blocker')['slow']), 2);
  const t0 = performance.now();
  await dev.publishAsync('sensors/dev-3/data', JSON.stringify({ t: 3 }), { qos: 1 });
  assert.ok(performance.now() - t0 < 1000, 'no more blocking after quarantine');
});

test('worker plugins: an infinite loop and unbounded allocation are killed within 2 × budget, restarted, then quarantined', async (t) => {
  const h = await startGateway(
    `  plugins:\n${entry('looper', 'isolation: worker')}\n${entry('hog', 'isolation: worker, max_heap_mb: 16')}\n${entry('good')}\n  hook_budget_ms: 300\n  worker_restarts: 1\n  retry: { min_ms: 50, max_ms: 100 }`,
  );
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${h.mqttPort}`, { clientId: 'dev-4' });
  t.after(async () => {
    await dev.endAsync();
    await h.stop();
    cleanup(h.dir);
  });
  assert.equal(h.state('looper'), 'ready');
  assert.equal(h.state('hog'), 'ready');
  // One reading: the looping worker is terminated within 2 × its 300 ms budget.
  const k0 = performance.now();
  await dev.publishAsync('sensors/dev-4/data', JSON.stringify({ t: 0 }), { qos: 1 });
  await until(() => Number(h.view('looper')['workerRestarts']) >= 1, 5000, 'looper killed');
  const killedAfter = performance.now() - k0;
  assert.ok(killedAfter < 600, `killed after ${Math.round(killedAfter)} ms`);
  const rtt: number[] = [];
  const t0 = performance.now();
  let restarts = -1;
  while (performance.now() - t0 < 15000 && !(h.state('looper') === 'quarantined' && h.state('hog') === 'quarantined')) {
    const s = performance.now();
    await dev.publishAsync('sensors/dev-4/data', JSON.stringify({ t: 1 }), { qos: 1 });
    rtt.push(performance.now() - s);
    const r = Number(h.view('looper')['workerRestarts']);
    if (r !== restarts) restarts = r;
    await sleep(50);
  }
  assert.equal(h.state('looper'), 'quarantined');
  assert.equal(h.state('hog'), 'quarantined');
  assert.equal(Number(h.view('looper')['workerRestarts']), 2);
  assert.match(String((h.view('hog')['lastError'] as { message: string }).message), /worker/);
  rtt.sort((a, b) => a - b);
  // The gateway thread never ran the loop: MQTT round trips stay short.
  assert.ok(rtt[Math.floor(rtt.length * 0.9)]! < 200, `p90 MQTT round trip ${rtt[Math.floor(rtt.length * 0.9)]} ms`);
  assert.equal(h.state('good'), 'ready');
});

test('reload under load loses no reading', async (t) => {
  const h = await startGateway(`  plugins:\n${entry('counter', 'config: { gen: 1 }')}`);
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${h.mqttPort}`, { clientId: 'dev-5' });
  t.after(async () => {
    await dev.endAsync();
    await h.stop();
    cleanup(h.dir);
  });
  const seen = new Set<number>();
  dev.on('message', (_t, p) => {
    const b = JSON.parse(p.toString()) as { values?: Record<string, number> } & Record<string, number>;
    seen.add((b.values ?? b)['i']!);
  });
  await dev.subscribeAsync('sensors/+/data', { qos: 1 });
  const N = 400;
  const sending = (async () => {
    for (let i = 0; i < N; i++) await dev.publishAsync('sensors/dev-5/data', JSON.stringify({ i }), { qos: 1 });
  })();
  const actions = h.gw.mgmt.get('pluginActions')!;
  for (let k = 0; k < 5; k++) {
    await sleep(30);
    await actions.act('reload', 'counter');
  }
  await sending;
  await until(() => seen.size === N, 5000, `all ${N} readings (${seen.size})`);
  // Every reading was accepted by the pipeline (none refused, none dropped) across five reloads.
  assert.equal(h.gw.context.pipeline.counters.accepted, N);
  assert.equal(h.gw.context.pipeline.counters.dropped, 0);
  assert.equal(h.gw.context.latest.get('dev-5')?.values['gen'], 1);
  assert.equal(h.state('counter'), 'ready');
  assert.equal(h.view('counter')['generation'], 6);
});

test('a worker plugin: same ctx through messages (kv, publish, command); sync hooks and undeclared topics refused', async (t) => {
  const h = await startGateway(`  plugins:\n${entry('worker-good', 'isolation: worker')}`);
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${h.mqttPort}`, { clientId: 'dev-w1' });
  const got: { topic: string; body: Record<string, unknown> }[] = [];
  dev.on('message', (topic, p) => got.push({ topic, body: JSON.parse(p.toString()) as Record<string, unknown> }));
  t.after(async () => {
    await dev.endAsync();
    await h.stop();
    cleanup(h.dir);
  });
  assert.equal(h.state('worker-good'), 'ready');
  assert.equal(h.view('worker-good')['version'], '2.0.0');
  await dev.subscribeAsync(['w/#', 'commands/#'], { qos: 1 });
  // The setup message was published before we subscribed: reload to see it again (new worker).
  await h.gw.mgmt.get('pluginActions')!.act('reload', 'worker-good');
  const setup = await until(() => got.find((m) => m.topic === 'w/setup'), 5000, 'setup report');
  assert.deepEqual(setup.body, { annotate: 'EGW_PLUGIN_CAPABILITY', sneaky: 'EGW_PLUGIN_CAPABILITY', threadId: true });
  for (let i = 0; i < 3; i++) await dev.publishAsync('sensors/dev-w1/data', JSON.stringify({ t: i }), { qos: 1 });
  await until(() => got.filter((m) => m.topic === 'w/seen').length === 3, 5000, 'three observed');
  assert.deepEqual(
    got.filter((m) => m.topic === 'w/seen').map((m) => m.body['n']),
    [1, 2, 3],
  );
  await until(() => got.filter((m) => m.topic === 'commands/dev-w1').length === 3, 5000, 'three commands');
  const hello = await coapClient(['-m', 'get', `coap://127.0.0.1:${h.coapPort}/plugins/worker-good/hello?who=ops`]);
  assert.equal(hello.stdout.trim(), 'hello ops');
  assert.equal(h.view('worker-good')['workerRestarts'], 0);
});

test('POST /mgmt/plugins refuses hostile input: bad action, bad or unknown name, read token', async (t) => {
  const h = await startGateway(`  plugins:\n${entry('counter')}`);
  t.after(async () => {
    await h.stop();
    cleanup(h.dir);
  });
  const tokens = JSON.parse(readFileSync(join(h.dir, 'mgmt-tokens.json'), 'utf8')) as { read: string; admin: string };
  const url = (q: string) => `coap://127.0.0.1:${h.coapPort}/mgmt/plugins?${q}`;
  const code = async (q: string, token: string) => {
    const r = await coapClient(['-m', 'post', url(`token=${token}&${q}`)]);
    return r.stdout + r.stderr;
  };
  const cases: [string, string, RegExp][] = [
    ['action=explode&name=counter', tokens.admin, /action must be/],
    ['action=reload&name=../../etc', tokens.admin, /name=<plugin name> is required/],
    [`action=reload&name=${'a'.repeat(40)}`, tokens.admin, /name=<plugin name> is required/],
    ['action=disable&name=nope', tokens.admin, /no plugin nope/],
  ];
  for (const [q, token, re] of cases) assert.match(await code(q, token), re, q);
  const ro = await coapClient(['-m', 'post', url(`action=disable&name=counter&token=${tokens.read}`)]);
  assert.equal(h.state('counter'), 'ready', `read token must not disable (${ro.stdout}${ro.stderr})`);
});

test('alert and inspection hooks hear alerts/{deviceId} and inspection/{cameraId}/result', async (t) => {
  const h = await startGateway(`  plugins:\n${entry('alert-watch')}`);
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${h.mqttPort}`, { clientId: 'ops-1' });
  t.after(async () => {
    await c.endAsync();
    await h.stop();
    cleanup(h.dir);
  });
  const got: { topic: string; body: Record<string, unknown> }[] = [];
  c.on('message', (topic, p) => got.push({ topic, body: JSON.parse(p.toString()) as Record<string, unknown> }));
  await c.subscribeAsync('heard/#', { qos: 1 });
  await c.publishAsync('alerts/boiler-1', JSON.stringify({ rule: 'hot', event: 'raised' }), { qos: 1 });
  await c.publishAsync('inspection/cam-1/result', JSON.stringify({ verdict: 'defective' }), { qos: 1 });
  await c.publishAsync('alerts/boiler-1', 'not json', { qos: 1 });
  const a = await until(() => got.find((m) => m.topic === 'heard/alert'), 5000, 'alert heard');
  assert.deepEqual(a.body, { deviceId: 'boiler-1', rule: 'hot' });
  const i = await until(() => got.find((m) => m.topic === 'heard/inspection'), 5000, 'inspection heard');
  assert.deepEqual(i.body, { cameraId: 'cam-1', verdict: 'defective' });
  await sleep(200);
  assert.equal(got.filter((m) => m.topic === 'heard/alert').length, 1, 'a payload that is not JSON is not handed on');
  assert.equal(h.view('alert-watch')['errors'], 0);
});

test('transform and drop hooks: rescaled, dropped, invalid result refused; undeclared transform refused at setup', async (t) => {
  const h = await startGateway(`  plugins:\n${entry('shaper')}\n${entry('no-transform')}`);
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${h.mqttPort}`, { clientId: 'dev-s' });
  t.after(async () => {
    await dev.endAsync();
    await h.stop();
    cleanup(h.dir);
  });
  assert.equal(h.state('no-transform'), 'failed');
  assert.equal((h.view('no-transform')['lastError'] as { code: string }).code, 'EGW_PLUGIN_CAPABILITY');
  const { pipeline, latest } = h.gw.context;
  await dev.publishAsync('sensors/dev-s1/data', JSON.stringify({ raw: 235 }), { qos: 1 });
  await until(() => latest.get('dev-s1'), 5000, 'transformed reading');
  assert.equal(latest.get('dev-s1')!.values['raw'], 23.5);
  const dropped = pipeline.counters.dropped;
  await dev.publishAsync('sensors/dev-s2/data', JSON.stringify({ skip: true }), { qos: 1 });
  assert.equal(pipeline.counters.dropped, dropped + 1);
  assert.equal(latest.get('dev-s2'), undefined);
  await dev.publishAsync('sensors/dev-s3/data', JSON.stringify({ bad: true, n: 1 }), { qos: 1 });
  await until(() => latest.get('dev-s3'), 5000, 'reading passed unchanged');
  assert.equal(latest.get('dev-s3')!.values['n'], 1);
  assert.equal((h.view('shaper')['hooks'] as Record<string, { errors: number }>)['transform']!.errors, 1);
});
