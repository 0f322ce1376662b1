import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { HttpRoute } from '../metrics/server.js';
import { isValidDeviceId } from '../pipeline/reading.js';
import { PRIORITIES, type Priority } from '../queue/types.js';
import { COOKIE_NAME, isLoopbackHost, parseCookies, SessionKeeper, tokenMatches } from './auth.js';
import type { StatusPageConfig } from './config.js';
import { loginPage } from './login.js';
import { SampleRing } from './series.js';
import type { StatusSources } from './sources.js';
import { deviceDoc, devicesDoc, overviewDoc } from './views.js';

export interface StatusPageOptions {
  config: StatusPageConfig;
  /** The HTTP listener's bind address: beyond loopback the page asks for a token. */
  bindHost: string;
  /** Tokens that open the page: the management read token (the admin token may be listed too). */
  tokens: () => readonly string[];
  sources: StatusSources;
  log: Logger;
  /** Where index.html, app.js and style.css are (default: assets/ beside this file). */
  assetsDir?: string;
  wallClock?: () => number;
}

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};
/** Only plain names are served; anything else (../, %2e, slashes) is simply not in the table. */
const ASSET_NAME = /^[a-z0-9][a-z0-9-]{0,40}\.(html|js|css|svg)$/;
const MAX_LOGIN_BODY = 1024;
/** Wrong tokens allowed per minute across all clients before login answers 429. */
const MAX_FAILED_LOGINS_PER_MIN = 10;
/** The overview chart keeps one hour of outbox depth. */
const CHART_WINDOW_MS = 3600_000;

type Sse = ServerResponse;

/**
 * The read-only status page (docs/status-page.md): static assets, JSON views and one Server-Sent
 * Events stream, mounted on the metrics server's route table under /status/. Bound beyond loopback
 * it needs the management read token, given once in a login form (POST body, never a URL) and then
 * kept as a signed HttpOnly SameSite=Strict session cookie.
 */
export class StatusPage implements Service {
  readonly name = 'status-page';
  readonly routes: HttpRoute[];
  private readonly assets = new Map<string, Asset>();
  private readonly sessions: SessionKeeper;
  private readonly needsToken: boolean;
  private readonly ring: SampleRing<Priority> | undefined;
  private readonly clients = new Set<Sse>();
  private readonly wall: () => number;
  private timer: NodeJS.Timeout | undefined;
  private failed: number[] = [];
  private running = false;

  constructor(private readonly opts: StatusPageOptions) {
    this.wall = opts.wallClock ?? Date.now;
    this.sessions = new SessionKeeper(opts.config.session_hours * 3600);
    this.needsToken = opts.config.require_token === 'always' || !isLoopbackHost(opts.bindHost);
    this.ring = opts.sources.queues
      ? new SampleRing(PRIORITIES, Math.ceil(CHART_WINDOW_MS / opts.config.update_interval_ms))
      : undefined;
    this.routes = [
      { path: '/', handle: (_q, res) => redirect(res, '/status/') },
      { path: '/status', handle: (_q, res) => redirect(res, '/status/') },
      { path: '/status/', prefix: true, handle: (req, res, path) => this.handle(req, res, path) },
    ];
  }

  start(): Promise<void> {
    const dir = this.opts.assetsDir ?? new URL('./assets/', import.meta.url).pathname;
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch (err) {
      // A build without the asset copy (tsc alone) must not stop the gateway: /metrics, /health
      // and the JSON views still work; the page itself answers 404.
      this.opts.log.error({ err, dir }, 'status page assets missing (run npm run build); serving the JSON views only');
    }
    for (const name of names) {
      const m = ASSET_NAME.exec(name);
      if (!m) continue;
      const body = readFileSync(`${dir}/${name}`);
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`;
      this.assets.set(name, { body, type: TYPES[m[1]!]!, etag });
    }
    this.running = true;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.config.update_interval_ms);
    this.timer.unref();
    if (this.needsToken && this.opts.tokens().length === 0)
      this.opts.log.warn('status page bound beyond loopback without a read token: it will refuse every request');
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.running = false;
    clearInterval(this.timer);
    for (const c of this.clients) c.end();
    this.clients.clear();
    return Promise.resolve();
  }

  health(): ServiceHealth {
    return { ok: true, state: this.running ? 'serving' : 'stopped', detail: { clients: this.clients.size } };
  }

  /** Open event streams (tests, /mgmt). */
  get clientCount(): number {
    return this.clients.size;
  }

  /** Samples the outbox depth; pushes fresh views to open pages (computed once for all of them). */
  private tick(): void {
    const now = this.wall();
    const q = this.opts.sources.queues;
    if (this.ring && q) {
      const snap = q();
      const v = {} as Record<Priority, number>;
      for (const p of PRIORITIES) v[p] = snap.classes[p].depth;
      this.ring.add(now, v);
    }
    if (this.clients.size === 0) return;
    const { config, sources } = this.opts;
    const frame =
      `event: overview\ndata: ${JSON.stringify(overviewDoc(sources, this.ring, now, config.quiet_after_s, config.update_interval_ms))}\n\n` +
      `event: devices\ndata: ${JSON.stringify(devicesDoc(sources, now, config.quiet_after_s))}\n\n`;
    for (const c of this.clients) c.write(frame);
  }

  private authorised(req: IncomingMessage): boolean {
    if (!this.needsToken) return true;
    return this.sessions.valid(parseCookies(req.headers.cookie).get(COOKIE_NAME));
  }

  private handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (path === '/status/login' && req.method === 'POST') return this.login(req, res);
    if (path === '/status/logout' && req.method === 'POST') {
      if (!sameOrigin(req)) return html(res, 403, loginPage('This form may only be sent from the status page itself.'));
      res.writeHead(303, { location: '/status/', 'set-cookie': SessionKeeper.clearCookie() }).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (this.needsToken && this.opts.tokens().length === 0) {
      res
        .writeHead(503, { 'content-type': 'text/plain' })
        .end('the status page is bound beyond loopback and no read token is configured\n');
      return;
    }
    if (!this.authorised(req)) {
      if (path === '/status/' || path === '/status/login') {
        html(res, 401, loginPage(null));
        return;
      }
      if (path === '/status/assets/style.css') return this.asset(req, res, 'style.css');
      json(res, 401, { error: 'login required' });
      return;
    }
    if (path === '/status/' || path === '/status/login') return this.asset(req, res, 'index.html');
    if (path.startsWith('/status/assets/')) return this.asset(req, res, path.slice('/status/assets/'.length));
    if (path === '/status/events') return this.events(req, res);
    const { sources, config } = this.opts;
    const now = this.wall();
    switch (path) {
      case '/status/api/overview':
        return json(res, 200, overviewDoc(sources, this.ring, now, config.quiet_after_s, config.update_interval_ms));
      case '/status/api/devices':
        return json(res, 200, devicesDoc(sources, now, config.quiet_after_s));
      case '/status/api/alerts':
        return json(res, 200, sources.alerts ? { enabled: true, view: sources.alerts() } : { enabled: false });
      case '/status/api/ota':
        return json(res, 200, sources.ota ? { enabled: true, view: sources.ota() } : { enabled: false });
      case '/status/api/inspection':
        return json(res, 200, sources.inspection ? { enabled: true, view: sources.inspection() } : { enabled: false });
      case '/status/api/plugins':
        return json(res, 200, sources.plugins ? { enabled: true, view: sources.plugins() } : { enabled: false });
    }
    if (path.startsWith('/status/api/device/')) {
      const id = decodeId(path.slice('/status/api/device/'.length));
      const doc = id === undefined ? undefined : deviceDoc(sources, id, now, config.quiet_after_s);
      return doc ? json(res, 200, doc) : json(res, 404, { error: 'no such device' });
    }
    if (path.startsWith('/status/api/inspection/image/') && sources.inspectionImage) {
      const id = decodeId(path.slice('/status/api/inspection/image/'.length));
      const img = id === undefined ? undefined : sources.inspectionImage(id);
      if (img && /^image\/(jpeg|png|webp)$/.test(img.type)) {
        res.writeHead(200, { 'content-type': img.type, 'cache-control': 'private, max-age=3600' }).end(img.body);
        return;
      }
    }
    json(res, 404, { error: 'not found' });
  }

  private asset(req: IncomingMessage, res: ServerResponse, name: string): void {
    const a = ASSET_NAME.test(name) ? this.assets.get(name) : undefined;
    if (!a) return json(res, 404, { error: 'not found' });
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, { etag: a.etag }).end();
      return;
    }
    res.writeHead(200, { 'content-type': a.type, etag: a.etag, 'cache-control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : a.body);
  }

  private events(req: IncomingMessage, res: ServerResponse): void {
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' }).end();
      return;
    }
    if (this.clients.size >= this.opts.config.max_clients) {
      json(res, 503, { error: 'too many open status pages' });
      return;
    }
    // WHATWG HTML §9.2 (server-sent events): text/event-stream, `retry:` sets the reconnection delay.
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    res.write(`retry: ${Math.min(this.opts.config.update_interval_ms, 5000)}\n\n`);
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    req.socket.setTimeout(0);
    res.on('close', drop);
    // The first frame at once, not one interval later.
    const { config, sources } = this.opts;
    const now = this.wall();
    res.write(
      `event: overview\ndata: ${JSON.stringify(overviewDoc(sources, this.ring, now, config.quiet_after_s, config.update_interval_ms))}\n\n` +
        `event: devices\ndata: ${JSON.stringify(devicesDoc(sources, now, config.quiet_after_s))}\n\n`,
    );
  }

  private login(req: IncomingMessage, res: ServerResponse): void {
    if (!this.needsToken) return redirect(res, '/status/', 303);
    // A cross-site form post is refused outright (SameSite covers the cookie, this covers the form).
    if (!sameOrigin(req)) {
      html(res, 403, loginPage('This form may only be sent from the status page itself.'));
      return;
    }
    const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (ctype !== 'application/x-www-form-urlencoded') {
      html(res, 415, loginPage('Unsupported form encoding.'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_LOGIN_BODY && !done) {
        done = true;
        res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }).end('form too large\n');
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      const now = performance.now();
      this.failed = this.failed.filter((t) => now - t < 60_000);
      if (this.failed.length >= MAX_FAILED_LOGINS_PER_MIN) {
        html(res, 429, loginPage('Too many wrong tokens; wait a minute.'));
        return;
      }
      const token = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('token') ?? '';
      if (!tokenMatches(token, this.opts.tokens())) {
        this.failed.push(now);
        // The remote address, never what was typed.
        this.opts.log.warn({ remote: req.socket.remoteAddress }, 'status page: wrong token');
        html(res, 401, loginPage('Wrong token.'));
        return;
      }
      res
        .writeHead(303, { location: '/status/', 'set-cookie': this.sessions.setCookie(this.sessions.issue(), false) })
        .end();
    });
  }
}

/** No Origin (curl, old browsers) or this very host; `null` and other sites are refused. */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  return origin === undefined || originHost(origin) === req.headers.host;
}

function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

function decodeId(raw: string): string | undefined {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  return isValidDeviceId(id) ? id : undefined;
}

function redirect(res: ServerResponse, to: string, code = 302): void {
  res.writeHead(code, { location: to }).end();
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

function html(res: ServerResponse, code: number, body: string): void {
  res.writeHead(code, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body);
}
