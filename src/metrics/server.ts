import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import { listenError } from '../lifecycle/listen-error.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import { VERSION } from '../version.js';
import type { MetricsConfig } from './config.js';

export const METRIC_PREFIX = 'edge_gateway_';

/** One registry per gateway instance (never prom-client's global one, so tests can run several). */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  // The Prometheus "info" idiom: a constant 1 whose labels say what is running.
  new Gauge({
    name: `${METRIC_PREFIX}build_info`,
    help: 'Always 1; labels: the gateway version and the Node.js version running it.',
    labelNames: ['version', 'node'],
    registers: [registry],
  }).set({ version: VERSION, node: process.versions.node }, 1);
  return registry;
}

/**
 * One entry of the server's route table: an exact path, or every path under a prefix ending in
 * "/". Handlers get the path without the query string.
 */
export interface HttpRoute {
  path: string;
  prefix?: boolean;
  handle(req: IncomingMessage, res: ServerResponse, path: string): void;
}

/**
 * Sent with every response of this listener, whatever route answers: nothing here needs inline
 * script or style, a frame, or another origin (CSP Level 3, W3C; 'none' unless listed).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on the login form's
  // POST, and the login checks Origin (Fetch standard §3.2.5, "serializing a request origin").
  'referrer-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** Request headers above this size get 431 from Node before any route runs (default is 16 KiB). */
export const MAX_HEADER_BYTES = 8192;

export interface MetricsServerOptions {
  config: MetricsConfig;
  registry: Registry;
  log: Logger;
  /** Gateway health for GET /health (the meaning of /mgmt/health); without it /health is 404. */
  health?: () => { ok: boolean };
  /** More routes on the same listener (the status page); matched after /metrics and /health. */
  routes?: readonly HttpRoute[];
}

/**
 * The gateway's one HTTP listener: GET /metrics (Prometheus text), GET /health (200/503) and any
 * routes handed in (the status page), so a board opens one TCP port for all of them.
 */
export class MetricsServer implements Service {
  readonly name = 'metrics';
  private server: Server | undefined;
  private readonly routes: HttpRoute[];

  constructor(private readonly opts: MetricsServerOptions) {
    this.routes = [
      { path: '/metrics', handle: (req, res) => this.metrics(req, res) },
      ...(opts.health
        ? [{ path: '/health', handle: (req: IncomingMessage, res: ServerResponse) => this.health_(req, res) }]
        : []),
      ...(opts.routes ?? []),
    ];
  }

  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  private route(path: string): HttpRoute | undefined {
    for (const r of this.routes) if (r.prefix ? path.startsWith(r.path) : path === r.path) return r;
    return undefined;
  }

  private metrics(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const { registry } = this.opts;
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => {
        this.opts.log.error({ err }, 'metrics collection failed');
        res.writeHead(500).end();
      },
    );
  }

  /** 200 when healthy, 503 when not; the body is the same document as /mgmt/health. */
  private health_(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const h = this.opts.health!();
    res
      .writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(`${JSON.stringify(h)}\n`);
  }

  async start(): Promise<void> {
    const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      const path = (req.url ?? '').split('?')[0]!;
      const r = this.route(path);
      if (!r) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
        return;
      }
      try {
        r.handle(req, res, path);
      } catch (err) {
        this.opts.log.error({ err, path }, 'HTTP handler failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end();
      }
    });
    server.headersTimeout = 5000;
    server.requestTimeout = 10000;
    const { host, port } = this.opts.config;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(listenError('metrics', host, port, err, 'EGW_SERVICE_START'));
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    this.server = server;
    this.opts.log.info({ port: this.port, host: this.opts.config.host }, 'metrics listening');
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  health(): ServiceHealth {
    return this.server?.listening
      ? { ok: true, state: 'listening', detail: { port: this.port } }
      : { ok: false, state: 'stopped' };
  }
}
