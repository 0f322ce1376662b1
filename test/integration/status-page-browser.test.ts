import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import type { Browser } from 'playwright-core';
import { launch, until, watchErrors } from './status-browser.js';
import { startStatusRig } from './status-harness.js';
import { Cloud } from './uplink-cloud.js';

// Real headless Chromium against the real gateway pieces (status-harness.ts): the page is looked
// at the way a technician would, through the DOM the browser built from the SSE stream.

let browser: Browser;
test.before(async () => {
  browser = await launch();
});
test.after(() => browser?.close());

const num = (s: string | null) => Number((s ?? '').replace(/[^0-9.]/g, ''));

test('overview: the simulated sensor shows up, the outbox fills while the cloud is down and drains when it returns; no console errors', async (t) => {
  const cloud = await Cloud.create();
  t.after(() => cloud.stop());
  const rig = await startStatusRig({ cloudUrl: cloud.url, simIntervalMs: 50 });
  t.after(() => rig.close());
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${rig.url}/status/`);
  await until('live', async () => (await page.textContent('#conn')) === 'live', 5000);
  await until('uplink online', async () => (await page.textContent('#uplink-state')) === 'online', 10000);
  await page.click('nav a[data-page=devices]');
  await until('sim-1 listed with values', () => page.isVisible('tr[data-device="sim-1"] .value'), 5000);
  assert.match((await page.textContent('tr[data-device="sim-1"] .state'))!, /online/);
  await page.click('nav a[data-page=overview]');

  await cloud.stop();
  await until('uplink offline', async () => (await page.textContent('#uplink-state')) === 'offline', 10000);
  const first = await until('outbox filling', async () => num(await page.textContent('#outbox-total')), 10000);
  const peak = await until(
    'outbox grows',
    async () => {
      const n = num(await page.textContent('#outbox-total'));
      return n >= first + 5 ? n : 0;
    },
    10000,
  );
  t.diagnostic(`outbox rows while the cloud was down: ${first} → ${peak}`);
  // The chart has one line per class and the waiting class's line is not flat at zero.
  assert.equal(await page.locator('svg.chart polyline').count(), 4);

  await cloud.start();
  await until('uplink online again', async () => (await page.textContent('#uplink-state')) === 'online', 15000);
  const drained = await until(
    'outbox drained',
    async () => {
      const n = num(await page.textContent('#outbox-total'));
      return n <= 2 ? `rows ${n}` : '';
    },
    15000,
  );
  t.diagnostic(`after the cloud returned: ${drained}`);
  assert.deepEqual(errors, []);
});

test('a device that goes offline turns red within two update intervals', async (t) => {
  const rig = await startStatusRig({ noSim: true, page: { update_interval_ms: 500 } });
  t.after(() => rig.close());
  const dev = mqtt.connect(`mqtt://127.0.0.1:${rig.brokerPort}`, { clientId: 'press-7', reconnectPeriod: 0 });
  t.after(() => dev.end(true));
  await new Promise((r, j) => (dev.once('connect', r), dev.once('error', j)));
  await dev.publishAsync('sensors/press-7/data', JSON.stringify({ pressure: 2.5 }), { qos: 1 });
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${rig.url}/status/#/devices`);
  await until(
    'press-7 online',
    async () => (await page.getAttribute('tr[data-device="press-7"]', 'class')) === 'state-online',
    5000,
  );
  const t0 = performance.now();
  await dev.endAsync();
  await until(
    'press-7 offline',
    async () => (await page.getAttribute('tr[data-device="press-7"]', 'class')) === 'state-offline',
    5000,
    20,
  );
  const took = performance.now() - t0;
  t.diagnostic(`offline shown after ${Math.round(took)} ms (bound: 2 × 500 ms + 500 ms)`);
  assert.ok(took < 1500, `${took} ms`);
  const color = await page.evaluate(
    `getComputedStyle(document.querySelector('tr[data-device="press-7"] .state')).color`,
  );
  assert.equal(color, 'rgb(179, 38, 30)', 'red (--bad), and the word "offline" beside it');
  assert.match((await page.textContent('tr[data-device="press-7"] .state'))!, /offline \(disconnect\)/);
  assert.deepEqual(errors, []);
});

test('device page: readings plotted from the local history and the recent dead letters; a capability not built says "not enabled"', async (t) => {
  const rig = await startStatusRig({ noSim: true });
  t.after(() => rig.close());
  const dev = mqtt.connect(`mqtt://127.0.0.1:${rig.brokerPort}`, { clientId: 'tank-2', reconnectPeriod: 0 });
  t.after(() => dev.end(true));
  await new Promise((r, j) => (dev.once('connect', r), dev.once('error', j)));
  for (let i = 0; i < 8; i++) {
    await dev.publishAsync('sensors/tank-2/data', JSON.stringify({ level: 40 + i * 3, pump: i % 2 === 0 }), { qos: 1 });
    await new Promise((r) => setTimeout(r, 30));
  }
  await dev.publishAsync('sensors/tank-2/data', 'level=oops', { qos: 1 });
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${rig.url}/status/#/device/tank-2`);
  await until('level plotted', async () => (await page.locator('svg.chart polyline').count()) === 1, 10000);
  await until('dead letter listed', () => page.isVisible('#deadletters tbody tr'), 10000);
  assert.match((await page.textContent('#deadletters tbody'))!, /level=oops/);
  await page.goto(`${rig.url}/status/#/devices`);
  await until('sparkline', () => page.isVisible('tr[data-device="tank-2"] svg.spark polyline'), 5000);
  for (const p of ['alerts', 'inspection', 'ota', 'plugins']) {
    await page.click(`nav a[data-page=${p}]`);
    await until(
      `${p} not enabled`,
      async () =>
        (await page.getAttribute(`nav a[data-page=${p}]`, 'aria-current')) === 'page' &&
        (await page.textContent('main h2'))?.toLowerCase() === p &&
        (await page.isVisible('#not-enabled')),
      5000,
    );
  }
  assert.deepEqual(errors, []);
});

test('bound beyond loopback the page asks for the token, refuses a wrong one, and keeps the right one only in an HttpOnly cookie', async (t) => {
  const token = 'status-read-9f3KqL0p';
  const rig = await startStatusRig({ noSim: true, claimHost: '192.0.2.10', token });
  t.after(() => rig.close());
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = watchErrors(page);
  const resp = await page.goto(`${rig.url}/status/`);
  assert.equal(resp?.status(), 401);
  assert.ok(await page.isVisible('form input#token'));
  await page.fill('#token', 'wrong-token');
  await page.press('#token', 'Enter');
  await until('refused', () => page.isVisible('#login-error'), 5000);
  assert.match((await page.textContent('#login-error'))!, /Wrong token/);
  assert.deepEqual(await context.cookies(), []);
  await page.fill('#token', token);
  await page.click('button[type=submit]');
  await until('overview', async () => (await page.textContent('#conn')) === 'live', 5000);
  assert.equal(page.url(), `${rig.url}/status/`);
  const cookies = await context.cookies();
  assert.equal(cookies.length, 1);
  assert.equal(cookies[0]!.httpOnly, true);
  assert.equal(cookies[0]!.sameSite, 'Strict');
  assert.ok(!cookies[0]!.value.includes(token));
  assert.equal(await page.evaluate('document.cookie'), '', 'no script can read the session');
  await page.reload();
  await until('still signed in after reload', async () => (await page.textContent('#conn')) === 'live', 5000);
  assert.ok(!rig.logText().includes(token));
  // The 401 of the first visit is the browser's own "Failed to load resource" line; nothing else.
  assert.deepEqual(
    errors.filter((e) => !/status of 401/.test(e)),
    [],
  );
});

test('the page shows "disconnected" when the gateway goes away', async (t) => {
  const rig = await startStatusRig({ noSim: true, page: { update_interval_ms: 500 } });
  let closed = false;
  t.after(() => (closed ? undefined : rig.close()));
  const page = await browser.newPage();
  await page.goto(`${rig.url}/status/`);
  await until('live', async () => (await page.textContent('#conn')) === 'live', 5000);
  await rig.close();
  closed = true;
  const t0 = performance.now();
  await until('disconnected', async () => (await page.textContent('#conn')) === 'disconnected', 5000);
  t.diagnostic(`disconnected shown after ${Math.round(performance.now() - t0)} ms`);
  assert.equal(await page.evaluate("document.body.classList.contains('disconnected')"), true);
});

test('alerts page lists what the real rule engine raised; the OTA page shows the real client state', async (t) => {
  const rig = await startStatusRig({
    ota: true,
    rules:
      '[{ name: sim-warm, devices: "sim-*", value: temperature, when: { above: -1000 }, severity: minor, message: "{device} is warm: {value}" }]',
  });
  t.after(() => rig.close());
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${rig.url}/status/#/alerts`);
  await until('alert row', () => page.isVisible('#alerts-active tr[data-alert^="sim-warm/sim-1/"]'), 10000);
  assert.match((await page.textContent('#alerts-active tbody'))!, /sim-1 is warm/);
  await page.click('nav a[data-page=ota]');
  await until('ota phase', async () => (await page.textContent('#ota-phase')) === 'idle', 5000);
  assert.deepEqual(errors, []);
});

test('inspection page shows thumbnails of kept defect images under the CSP', async (t) => {
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
    'base64',
  );
  const rig = await startStatusRig({
    noSim: true,
    inspection: {
      doc: { images: [{ id: 'cam-1.7' }], lastResult: { verdict: 'defective' } },
      images: new Map([['cam-1.7', { type: 'image/png', body: png }]]),
    },
  });
  t.after(() => rig.close());
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${rig.url}/status/#/inspection`);
  await until(
    'thumbnail decoded',
    async () => Number(await page.evaluate(`document.querySelector('.thumbs img')?.naturalWidth ?? 0`)) === 1,
    5000,
  );
  assert.equal(await page.getAttribute('.thumbs img', 'alt'), 'defect image cam-1.7');
  assert.deepEqual(errors, []);
});

test('keyboard: a skip link first, then the navigation; Enter follows a link; the phone layout has no page-wide horizontal scroll', async (t) => {
  const rig = await startStatusRig({});
  t.after(() => rig.close());
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(`${rig.url}/status/`);
  await until('live', async () => (await page.textContent('#conn')) === 'live', 5000);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate('document.activeElement.textContent'), 'Skip to content');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate('document.activeElement.textContent'), 'Overview');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate('document.activeElement.textContent'), 'Devices');
  await page.keyboard.press('Enter');
  await until('devices page', () => page.isVisible('#device-table'), 5000);
  assert.equal(await page.getAttribute('nav a[data-page=devices]', 'aria-current'), 'page');
  const overflow = Number(
    await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'),
  );
  assert.ok(overflow <= 0, `page scrolls sideways by ${overflow} px`);
  assert.deepEqual(errors, []);
});
