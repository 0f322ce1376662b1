import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import { listenError } from '../lifecycle/listen-error.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { MetricsConfig } from './config.js';

export const METRIC_PREFIX = 'edge_gateway_';

/** One registry per gateway instance (never prom-client's global one, so tests can run several). */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

/** Serves GET /metrics in the Prometheus text format. */
export class MetricsServer implements Service {
  readonly name = 'metrics';
  private server: Server | undefined;

  constructor(private readonly opts: { config: MetricsConfig; registry: Registry; log: Logger }) {}

  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  async start(): Promise<void> {
    const { registry } = this.opts;
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
        return;
      }
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        (err: unknown) => {
          this.opts.log.error({ err }, 'metrics collection failed');
          res.writeHead(500).end();
        },
      );
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
