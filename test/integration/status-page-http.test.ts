import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startStatusRig, type StatusRig } from './status-harness.js';

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with the path sent as written (node:http does not normalise it). */
function http(
  base: string,
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string; maxBytes?: number } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request(
      { host: u.hostname, port: u.port, path, method: o.method ?? 'GET', headers: o.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          n += c.length;
          // An event stream never ends: take the first frames and hang up.
          if (o.maxBytes && n >= o.maxBytes) res.destroy();
        });
        const done = () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.on('end', done);
        res.on('close', done);
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(o.body);
  });
}

function assertSecurityHeaders(r: Res, what: string): void {
  const csp = String(r.headers['content-security-policy']);
  assert.match(csp, /default-src 'none'/, what);
  assert.match(csp, /script-src 'self'(;|$)/, what);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, what);
  assert.equal(r.headers['x-content-type-options'], 'nosniff', what);
}

test('one listener serves /metrics (with build_info), /health (200/503) and the status page, all with a strict CSP', async (t) => {
  const rig = await startStatusRig({ noSim: true });
  t.after(() => rig.close());
  const m = await http(rig.url, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.body, /edge_gateway_build_info\{version="[^"]+",node="[^"]+"\} 1/);
  assertSecurityHeaders(m, '/metrics');
  const h = await http(rig.url, '/health');
  assert.equal(h.status, 200);
  assert.equal((JSON.parse(h.body) as { ok: boolean }).ok, true);
  assertSecurityHeaders(h, '/health');
  rig.setUnhealthy(true);
  const h2 = await http(rig.url, '/health');
  assert.equal(h2.status, 503);
  assert.equal((JSON.parse(h2.body) as { ok: boolean }).ok, false);
  rig.setUnhealthy(false);
  assert.equal((await http(rig.url, '/health', { method: 'POST' })).status, 405);
  const root = await http(rig.url, '/');
  assert.equal(root.status, 302);
  assert.equal(root.headers.location, '/status/');
  for (const p of ['/status/', '/status/assets/app.js', '/status/assets/style.css', '/nope', '/status/api/overview']) {
    const r = await http(rig.url, p);
    assertSecurityHeaders(r, p);
  }
  const page = await http(rig.url, '/status/');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /text\/html/);
  // No inline script anywhere: the only script is the external module.
  assert.doesNotMatch(
    page.body.replace(/<script type="module" src="\/status\/assets\/app.js"><\/script>/, ''),
    /<script/,
  );
  const ov = JSON.parse((await http(rig.url, '/status/api/overview')).body) as {
    version: string;
    queues: { classes: unknown[] } | null;
    enabled: Record<string, boolean>;
  };
  assert.ok(ov.version);
  assert.equal(ov.queues?.classes.length, 4);
  assert.equal(ov.enabled.alerts, false);
  assert.deepEqual(JSON.parse((await http(rig.url, '/status/api/ota')).body), { enabled: false });
  // Page weight guard (issue target ≤ 300 KB transferred): everything a first load fetches.
  let bytes = 0;
  for (const p of ['/status/', '/status/assets/app.js', '/status/assets/style.css'])
    bytes += Buffer.byteLength((await http(rig.url, p)).body);
  assert.ok(bytes < 100_000, `first load ${bytes} bytes`);
  const head = await http(rig.url, '/status/events', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(rig.page.clientCount, 0, 'HEAD opens no stream');
});

test('hostile paths and headers: traversal, odd encodings, oversized headers, wrong methods', async (t) => {
  const rig = await startStatusRig({ noSim: true });
  t.after(() => rig.close());
  for (const p of [
    '/status/assets/../../../package.json',
    '/status/assets/..%2f..%2f..%2fpackage.json',
    '/status/assets/%2e%2e/page.js',
    '/status/assets/../page.js',
    '/status/assets/app.js%00.css',
    '/status/assets/APP.JS',
    '/status/assets/',
    '/status/assets//etc/passwd',
    '/status/api/device/..%2f..%2fx',
    '/status/api/device/%E0%A4%A',
    `/status/api/device/${'a'.repeat(200)}`,
  ]) {
    const r = await http(rig.url, p);
    assert.equal(r.status, 404, p);
    assert.doesNotMatch(r.body, /"name": "edge-gateway"|root:/, p);
  }
  const big = await http(rig.url, '/status/', { headers: { 'x-big': 'a'.repeat(10000) } });
  assert.equal(big.status, 431);
  const bigCookie = await http(rig.url, '/status/api/overview', { headers: { cookie: 'a=b; '.repeat(1500) } });
  assert.equal(bigCookie.status, 200, 'loopback: cookies are irrelevant, a bounded cookie header is harmless');
  assert.equal((await http(rig.url, '/status/api/overview', { method: 'DELETE' })).status, 405);
  assert.equal((await http(rig.url, '/metrics', { method: 'PUT' })).status, 405);
});

const TOKEN = 'read-token-Zq81xN3v';

async function login(rig: StatusRig, token: string, headers: Record<string, string> = {}): Promise<Res> {
  return http(rig.url, '/status/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ token }).toString(),
  });
}

test('beyond loopback the page asks for the read token, refuses a wrong one, keeps a good one in an HttpOnly SameSite=Strict cookie and never logs it', async (t) => {
  const rig = await startStatusRig({ noSim: true, claimHost: '192.0.2.10', token: TOKEN });
  t.after(() => rig.close());
  const first = await http(rig.url, '/status/');
  assert.equal(first.status, 401);
  assert.match(first.body, /<form method="post" action="\/status\/login">/);
  assert.doesNotMatch(first.body, /<script/);
  assertSecurityHeaders(first, 'login page');
  assert.equal((await http(rig.url, '/status/api/overview')).status, 401);
  assert.equal((await http(rig.url, '/status/events')).status, 401);
  assert.equal((await http(rig.url, '/status/assets/app.js')).status, 401);
  // A token in the URL is never accepted.
  assert.equal((await http(rig.url, `/status/api/overview?token=${TOKEN}`)).status, 401);
  const wrong = await login(rig, 'not-the-token');
  assert.equal(wrong.status, 401);
  assert.match(wrong.body, /Wrong token/);
  assert.equal(wrong.headers['set-cookie'], undefined);
  const cross = await login(rig, TOKEN, { origin: 'http://evil.example' });
  assert.equal(cross.status, 403);
  assert.equal((await login(rig, TOKEN, { origin: '::not a url' })).status, 403);
  const json = await http(rig.url, '/status/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: TOKEN }),
  });
  assert.equal(json.status, 415);
  const huge = await http(rig.url, '/status/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${'x'.repeat(5000)}`,
  }).catch(() => ({ status: 413 }) as Res);
  assert.equal(huge.status, 413);

  const ok = await login(rig, TOKEN);
  assert.equal(ok.status, 303);
  assert.equal(ok.headers.location, '/status/');
  const setCookie = String(ok.headers['set-cookie']);
  assert.match(setCookie, /^egw_status=v1\.[^;]+; Path=\/status\/; Max-Age=\d+; HttpOnly; SameSite=Strict/);
  assert.ok(!setCookie.includes(TOKEN), 'the cookie is a signed session, not the token');
  const cookie = setCookie.split(';')[0]!;
  const ov = await http(rig.url, '/status/api/overview', { headers: { cookie } });
  assert.equal(ov.status, 200);
  const ev = await http(rig.url, '/status/events', { headers: { cookie }, maxBytes: 200 });
  assert.equal(ev.status, 200);
  assert.match(String(ev.headers['content-type']), /text\/event-stream/);
  assert.match(ev.body, /event: overview/);

  // Bad cookies: tampered MAC, another key's format, garbage, quoted, oversized, many pairs, duplicates.
  const value = cookie.slice('egw_status='.length);
  const [v, exp, nonce, mac] = value.split('.');
  const flipped = `${mac![0] === 'A' ? 'B' : 'A'}${mac!.slice(1)}`;
  for (const bad of [
    `egw_status=${v}.${exp}.${nonce}.${flipped}`,
    `egw_status=${v}.${Number(exp) + 1000}.${nonce}.${mac}`,
    `egw_status=${v}.${exp}.${nonce}`,
    `egw_status=${TOKEN}`,
    'egw_status=',
    'egw_status',
    `egw_status="${'.'.repeat(300)}"`,
    `egw_status=${'A'.repeat(3000)}`,
    `${'x=1; '.repeat(40)}${cookie}`,
    `egw_status=junk; ${cookie}`,
    '\u00ff\u00fe=;;;==\t',
  ]) {
    const r = await http(rig.url, '/status/api/overview', { headers: { cookie: bad } });
    assert.equal(r.status, 401, bad.slice(0, 60));
  }
  const crossLogout = await http(rig.url, '/status/logout', {
    method: 'POST',
    headers: { cookie, origin: 'http://evil.example' },
  });
  assert.equal(crossLogout.status, 403);
  const logout = await http(rig.url, '/status/logout', { method: 'POST', headers: { cookie } });
  assert.equal(logout.status, 303);
  assert.match(String(logout.headers['set-cookie']), /Max-Age=0/);

  // Brute force: after 10 wrong tokens a minute, even the right one waits.
  for (let i = 0; i < 10; i++) await login(rig, `guess-${i}`);
  assert.equal((await login(rig, TOKEN)).status, 429);

  const logs = rig.logText();
  assert.match(logs, /status page: wrong token/);
  assert.ok(!logs.includes(TOKEN), 'the token never reaches the log');
  assert.ok(!logs.includes('not-the-token'), 'nor does a wrong one');
  assert.ok(!logs.includes('guess-3'));
});

test('beyond loopback without any token configured the page refuses everything (503) and says why', async (t) => {
  const rig = await startStatusRig({ noSim: true, claimHost: '0.0.0.0' });
  t.after(() => rig.close());
  const r = await http(rig.url, '/status/');
  assert.equal(r.status, 503);
  assert.match(r.body, /no read token/);
  assert.match(rig.logText(), /without a read token/);
  assert.equal((await http(rig.url, '/metrics')).status, 200);
});

test('event streams are bounded by max_clients; device views validate the id and carry history', async (t) => {
  const rig = await startStatusRig({ page: { max_clients: 2 } });
  t.after(() => rig.close());
  const held: Promise<Res>[] = [];
  const ac: { destroy(): void }[] = [];
  for (let i = 0; i < 2; i++) {
    held.push(
      new Promise((resolve) => {
        const u = new URL(rig.url);
        const req = request({ host: u.hostname, port: u.port, path: '/status/events' }, (res) => {
          resolve({ status: res.statusCode!, headers: res.headers, body: '' });
        });
        ac.push(req);
        req.on('error', () => undefined);
        req.end();
      }),
    );
  }
  assert.deepEqual(
    (await Promise.all(held)).map((r) => r.status),
    [200, 200],
  );
  assert.equal(rig.page.clientCount, 2);
  assert.equal((await http(rig.url, '/status/events')).status, 503);
  for (const r of ac) r.destroy();
  const deadline = Date.now() + 5000;
  while (rig.page.clientCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(rig.page.clientCount, 0);
  // sim-1 produces a reading every 100 ms; history flushes every 200 ms.
  let doc: { device: { id: string }; history: Record<string, { t: number[] }> | null } | undefined;
  while (Date.now() < deadline + 5000) {
    const r = await http(rig.url, '/status/api/device/sim-1');
    if (r.status === 200) {
      doc = JSON.parse(r.body) as typeof doc;
      if (doc && doc.history && Object.values(doc.history).some((s) => s.t.length >= 3)) break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(doc?.device.id, 'sim-1');
  assert.ok(Object.values(doc!.history!).some((s) => s.t.length >= 3));
  assert.equal((await http(rig.url, '/status/api/device/no-such')).status, 404);
});

test('inspection thumbnails: only kept images of an image type, by a checked id', async (t) => {
  const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
  const rig = await startStatusRig({
    noSim: true,
    inspection: {
      doc: { images: [{ id: 'cam-1.42' }] },
      images: new Map([
        ['cam-1.42', { type: 'image/png', body: png }],
        ['cam-1.43', { type: 'text/html', body: Buffer.from('<script>alert(1)</script>') }],
      ]),
    },
  });
  t.after(() => rig.close());
  assert.deepEqual(JSON.parse((await http(rig.url, '/status/api/inspection')).body), {
    enabled: true,
    view: { images: [{ id: 'cam-1.42' }] },
  });
  const img = await http(rig.url, '/status/api/inspection/image/cam-1.42');
  assert.equal(img.status, 200);
  assert.equal(img.headers['content-type'], 'image/png');
  assertSecurityHeaders(img, 'image');
  for (const p of ['cam-1.43', 'nope', '..%2fcam-1.42', '%ff'])
    assert.equal((await http(rig.url, `/status/api/inspection/image/${p}`)).status, 404, p);
});

test('a build without the page assets still serves /metrics, /health and the JSON views, and says what is missing', async (t) => {
  const rig = await startStatusRig({ noSim: true, assetsDir: '/nonexistent/status-assets' });
  t.after(() => rig.close());
  assert.equal((await http(rig.url, '/metrics')).status, 200);
  assert.equal((await http(rig.url, '/health')).status, 200);
  assert.equal((await http(rig.url, '/status/api/overview')).status, 200);
  assert.equal((await http(rig.url, '/status/')).status, 404);
  assert.match(rig.logText(), /status page assets missing/);
});
