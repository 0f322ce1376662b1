// Status page figures (docs/status-page.md §Figures): page weight, time to first render, the
// gateway's RSS and CPU with no page open vs one page open and updating, and the CPU of the open
// page (Chromium's renderer main thread) over the same time; optionally screenshots of each page.
//
//   node dist/scripts/bench-status-page.js [--seconds 60] [--screenshots docs/screenshots [--shots-only]]
//
// The gateway pieces run in a child process (`... rig`), so the browser driver's own memory is not
// counted as the gateway's. Needs Debian's chromium (CHROMIUM=/path overrides /usr/bin/chromium).
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import mqtt from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { startStatusRig } from '../test/integration/status-harness.js';
import { freePort } from '../test/integration/uplink-cloud.js';
import { cpuSeconds, rssKb } from './proc-stats.js';

const TOKEN = 'demo-read-token';

/** The child: gateway pieces with a dead cloud (the outbox fills), a rule, MQTT devices, a dead letter. */
async function rig(withToken: boolean): Promise<void> {
  const r = await startStatusRig({
    cloudUrl: `mqtt://127.0.0.1:${await freePort()}`,
    simIntervalMs: 1000,
    ota: true,
    page: { update_interval_ms: 2000 },
    rules:
      '[{ name: press-high, devices: "press-*", value: pressure, when: { above: 2.4 }, severity: major, message: "{device} pressure high: {value} bar" }]',
    ...(withToken ? { claimHost: '192.168.1.20', token: TOKEN } : {}),
  });
  const url = `mqtt://127.0.0.1:${r.brokerPort}`;
  const tank = mqtt.connect(url, { clientId: 'tank-2', reconnectPeriod: 0 });
  await new Promise((res) => tank.once('connect', res));
  for (let i = 0; i < 5; i++)
    await tank.publishAsync('sensors/tank-2/data', JSON.stringify({ level: 61 - i, pump: false }), { qos: 1 });
  await tank.endAsync();
  const press = mqtt.connect(url, { clientId: 'press-7', reconnectPeriod: 1000 });
  await new Promise((res) => press.once('connect', res));
  await press.publishAsync('sensors/press-7/data', '{"pressure": 2.1, "temperature": }', { qos: 1 });
  let i = 0;
  const timer = setInterval(() => {
    i++;
    const payload = { pressure: Math.round((2.2 + 0.3 * Math.sin(i / 6)) * 100) / 100, temperature: 41 + (i % 5) };
    press.publish('sensors/press-7/data', JSON.stringify(payload), { qos: 1 });
  }, 1000);
  process.stdout.write(`${JSON.stringify({ url: r.url })}\n`);
  // SIGUSR2: collect garbage, then report RSS, so two phases compare live memory, not GC timing.
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on('SIGUSR2', () => {
    gc?.();
    gc?.();
    const m = process.memoryUsage();
    process.stdout.write(
      `${JSON.stringify({ rssKb: Math.round(m.rss / 1024), heapKb: Math.round(m.heapUsed / 1024) })}\n`,
    );
  });
  process.once('SIGTERM', () => {
    clearInterval(timer);
    press.end(true);
    void r.close().then(() => process.exit(0));
  });
}

interface Child {
  child: ChildProcess;
  url: string;
  /** RSS and heap after a full GC in the child. */
  memory(): Promise<{ rssKb: number; heapKb: number }>;
}

function startChild(withToken: boolean): Promise<Child> {
  const child = spawn(process.execPath, ['--expose-gc', process.argv[1]!, 'rig', ...(withToken ? ['--token'] : [])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const rl = createInterface({ input: child.stdout! });
  const memory = () =>
    new Promise<{ rssKb: number; heapKb: number }>((resolve) => {
      rl.once('line', (l) => resolve(JSON.parse(l) as { rssKb: number; heapKb: number }));
      child.kill('SIGUSR2');
    });
  return new Promise((resolve, reject) => {
    rl.once('line', (l) => resolve({ child, url: (JSON.parse(l) as { url: string }).url, memory }));
    child.once('exit', (c) => reject(new Error(`rig exited ${c}`)));
  });
}

function procStat(pid: number): { cpuS: number; rssKb: number } {
  return { cpuS: cpuSeconds(pid), rssKb: rssKb(pid) };
}

/** Gateway CPU % and RSS (start, max) over `seconds`, sampled every second. */
async function watch(pid: number, seconds: number): Promise<{ cpuPct: number; rssStartKb: number; rssMaxKb: number }> {
  const a = procStat(pid);
  let max = a.rssKb;
  const t0 = performance.now();
  for (let i = 0; i < seconds; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    max = Math.max(max, procStat(pid).rssKb);
  }
  const b = procStat(pid);
  return { cpuPct: ((b.cpuS - a.cpuS) / ((performance.now() - t0) / 1000)) * 100, rssStartKb: a.rssKb, rssMaxKb: max };
}

async function weight(
  browser: Browser,
  url: string,
): Promise<{ bytes: number; requests: number; firstRenderMs: number[]; fcpMs: number[] }> {
  let bytes = 0;
  let requests = 0;
  const firstRenderMs: number[] = [];
  const fcpMs: number[] = [];
  for (let run = 0; run < 5; run++) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const sizes: Promise<number>[] = [];
    if (run === 0)
      page.on('requestfinished', (req) => {
        if (req.url().endsWith('/status/events')) return;
        sizes.push(req.sizes().then((s) => s.responseBodySize + s.responseHeadersSize));
      });
    const t0 = performance.now();
    await page.goto(`${url}/status/`);
    await page.waitForSelector('#uplink-state');
    firstRenderMs.push(performance.now() - t0);
    fcpMs.push(
      Number(await page.evaluate(`performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1`)),
    );
    if (run === 0) {
      const s = await Promise.all(sizes);
      requests = s.length;
      bytes = s.reduce((x, y) => x + y, 0);
    }
    await ctx.close();
  }
  return { bytes, requests, firstRenderMs, fcpMs };
}

async function pageCpu(page: Page, seconds: number): Promise<number> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const task = async () =>
    (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration')?.value ?? 0;
  const a = await task();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return ((await task()) - a) / seconds;
}

const PAGES = ['overview', 'devices', 'device/press-7', 'alerts', 'inspection', 'ota', 'plugins'];
const VIEWPORTS = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

async function screenshots(browser: Browser, url: string, dir: string): Promise<void> {
  for (const [vname, viewport] of Object.entries(VIEWPORTS)) {
    const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1 });
    const page = await ctx.newPage();
    for (const p of PAGES) {
      await page.goto(`${url}/status/#/${p}`);
      await page.waitForSelector('main h2');
      await page.waitForTimeout(2500);
      await page.screenshot({ path: `${dir}/${p.replace('/', '-')}-${vname}.png`, fullPage: true });
    }
    await ctx.close();
  }
}

async function loginShot(browser: Browser, dir: string): Promise<void> {
  const { child, url } = await startChild(true);
  try {
    for (const [vname, viewport] of Object.entries(VIEWPORTS)) {
      const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1 });
      const page = await ctx.newPage();
      await page.goto(`${url}/status/`);
      await page.fill('#token', 'wrong');
      await page.press('#token', 'Enter');
      await page.waitForSelector('#login-error');
      await page.screenshot({ path: `${dir}/login-${vname}.png`, fullPage: true });
      await ctx.close();
    }
  } finally {
    child.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === 'rig') return rig(args.includes('--token'));
  const seconds = Number(args[args.indexOf('--seconds') + 1] ?? 60) || 60;
  const shotDir = args.includes('--screenshots') ? args[args.indexOf('--screenshots') + 1] : undefined;
  const { launch, until } = await import('../test/integration/status-browser.js');
  const { child, url, memory } = await startChild(false);
  const browser = await launch();
  if (args.includes('--shots-only') && shotDir) {
    await new Promise((r) => setTimeout(r, 20000));
    await screenshots(browser, url, shotDir);
    await loginShot(browser, shotDir);
    await browser.close();
    child.kill('SIGTERM');
    return;
  }
  try {
    // Let the devices, history and rule settle before measuring the idle gateway.
    await new Promise((r) => setTimeout(r, 5000));
    const idle = await watch(child.pid!, seconds);
    const idleMem = await memory();
    const w = await weight(browser, url);
    const page = await browser.newPage();
    await page.goto(`${url}/status/`);
    await until('live', async () => (await page.textContent('#conn')) === 'live', 10000);
    const [open, renderer] = await Promise.all([watch(child.pid!, seconds), pageCpu(page, seconds)]);
    const openMem = await memory();
    await page.close();
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    const out = {
      seconds,
      pageWeight: { bytes: w.bytes, requests: w.requests },
      firstRender: { medianMs: Math.round(med(w.firstRenderMs)), fcpMedianMs: Math.round(med(w.fcpMs)) },
      gatewayIdle: {
        cpuPct: +idle.cpuPct.toFixed(2),
        rssStartMb: +(idle.rssStartKb / 1024).toFixed(1),
        rssMaxMb: +(idle.rssMaxKb / 1024).toFixed(1),
      },
      gatewayPageOpen: {
        cpuPct: +open.cpuPct.toFixed(2),
        rssStartMb: +(open.rssStartKb / 1024).toFixed(1),
        rssMaxMb: +(open.rssMaxKb / 1024).toFixed(1),
      },
      afterGc: { idle: idleMem, pageOpen: openMem },
      extraRssMbAfterGc: +((openMem.rssKb - idleMem.rssKb) / 1024).toFixed(2),
      pageRendererCpuPct: +(renderer * 100).toFixed(2),
    };
    console.log(JSON.stringify(out, null, 2));
    if (shotDir) {
      await screenshots(browser, url, shotDir);
      await loginShot(browser, shotDir);
    }
  } finally {
    await browser.close();
    child.kill('SIGTERM');
  }
}

await main();
