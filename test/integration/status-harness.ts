// A small composition root for the status-page tests: the real store, pipeline, device registry,
// dead letters, history, outbox + uplink (to a mosquitto "cloud"), MQTT broker, simulated driver,
// metrics server and status page, wired the way the lead wires them in src/gateway.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { AnalyticsService } from '../../src/analytics/service.js';
import { OtaClient } from '../../src/ota/client.js';
import { BrokerService } from '../../src/broker/broker.js';
import { parseConfig } from '../../src/config/load.js';
import type { GatewayContext, GatewayHealth } from '../../src/context.js';
import { DeadLetters } from '../../src/deadletters/index.js';
import { DeviceRegistry } from '../../src/devices/registry.js';
import { buildDrivers } from '../../src/drivers/index.js';
import { HistoryStore } from '../../src/history/store.js';
import { Lifecycle } from '../../src/lifecycle/lifecycle.js';
import { LoopMonitor } from '../../src/lifecycle/loop-monitor.js';
import type { Service } from '../../src/lifecycle/service.js';
import { createRegistry, MetricsServer } from '../../src/metrics/server.js';
import { LatestValues } from '../../src/pipeline/latest.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { buildQueue } from '../../src/queue/index.js';
import { StatusPageConfigSchema, type StatusPageConfig } from '../../src/status/config.js';
import { StatusPage } from '../../src/status/page.js';
import { statusSourcesFrom } from '../../src/status/sources.js';
import { openDatabase } from '../../src/store/db.js';
import { VERSION } from '../../src/version.js';
import { Value } from '@sinclair/typebox/value';
import { freePort } from './uplink-cloud.js';

export interface StatusRig {
  url: string;
  brokerPort: number;
  page: StatusPage;
  metrics: MetricsServer;
  /** Every log line written so far (JSON text), to check no token leaks into the log. */
  logText(): string;
  setUnhealthy(v: boolean): void;
  close(): Promise<void>;
}

export interface RigOptions {
  cloudUrl?: string;
  /**
   * The bind address the page is told the listener has (the listener itself stays on 127.0.0.1:
   * tests use loopback only). A LAN address here makes the page ask for the token.
   */
  claimHost?: string;
  token?: string;
  page?: Partial<StatusPageConfig>;
  simIntervalMs?: number;
  /** Leave the simulated driver out. */
  noSim?: boolean;
  /** YAML for `analytics.rules` (flow style); builds the real AnalyticsService and shows its alerts. */
  rules?: string;
  /** Build the real OtaClient (no channel set: it reports its state and never downloads). */
  ota?: boolean;
  /** Overrides where the page's assets are read from. */
  assetsDir?: string;
  /** Stand-in for the vision capability (not on this branch): its document and kept images. */
  inspection?: { doc: Record<string, unknown>; images: Map<string, { type: string; body: Buffer }> };
}

export async function startStatusRig(o: RigOptions = {}): Promise<StatusRig> {
  const dir = mkdtempSync(join(tmpdir(), 'egw-status-'));
  const brokerPort = await freePort();
  const httpPort = await freePort();
  const yaml = [
    'version: 1',
    `gateway: { id: gw-status, data_dir: ${JSON.stringify(dir)}, log_level: info, shutdown_timeout_ms: 3000 }`,
    `metrics: { host: 127.0.0.1, port: ${httpPort} }`,
    'coap: { enabled: false }',
    `broker: { host: 127.0.0.1, port: ${brokerPort}, connect_rate_per_ip: 0 }`,
    o.cloudUrl
      ? `uplink: { url: ${JSON.stringify(o.cloudUrl)}, reconnect: { min_ms: 100, max_ms: 500, jitter: 0.2 } }`
      : 'uplink: { enabled: false }',
    'history: { min_interval_s: 0, flush_interval_ms: 200 }',
    `analytics: { enabled: ${o.rules ? 'true' : 'false'}, rules: ${o.rules ?? '[]'} }`,
    o.noSim
      ? 'drivers: []'
      : `drivers: [{ type: simulated, id: sim-1, interval_ms: ${o.simIntervalMs ?? 100}, dropout_probability: 0, seed: 7 }]`,
  ].join('\n');
  const config = parseConfig(yaml, 'status-rig.yaml', {});
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  const registry = createRegistry();
  const devices = new DeviceRegistry(db);
  const pipeline = new Pipeline({ log, maxPending: 100000 });
  const deadletters = new DeadLetters({ db, config: config.deadletters, devices, pipeline, log, registry });
  const latest = new LatestValues();
  pipeline.addSink(latest);
  const history = new HistoryStore(db, config.history);
  pipeline.addSink({ name: 'history', afterCommit: true, accept: (r) => history.offer(r, performance.now()) });
  const historyTimer = setInterval(() => history.flush(), 200);
  const loop = new LoopMonitor(1000);
  loop.start();
  const startedAt = performance.now();
  let unhealthy = false;
  const started: { lifecycle?: Lifecycle } = {};
  const health = (): GatewayHealth => {
    const services = started.lifecycle?.health() ?? {};
    return {
      ok: !unhealthy && loop.responsive() && Object.values(services).every((s) => s.ok),
      loopLagMs: Math.round(loop.lagMs()),
      loopP99Ms: Math.round(loop.p99Ms() * 10) / 10,
      services,
    };
  };
  const ctx: GatewayContext = {
    config,
    configPath: undefined,
    log,
    db,
    pipeline,
    latest,
    devices,
    deadletters: deadletters.store,
    metrics: registry,
    version: VERSION,
    uptimeMs: () => performance.now() - startedAt,
    health,
    requestRestart: () => undefined,
  };
  const services: Service[] = [];
  const queue = buildQueue(ctx);
  services.push(...queue.services);
  services.push(new BrokerService({ config: config.broker, log, pipeline, devices, registry, db }));
  if (config.drivers.length > 0) services.push(buildDrivers(ctx).manager);
  let alerts: AnalyticsService | undefined;
  if (o.rules) {
    // Alerts go nowhere here (the publisher is another capability); the page shows the engine's view.
    alerts = new AnalyticsService({
      config: config.analytics,
      db,
      log,
      publisher: { publish: () => Promise.resolve({ local: false, uplink: false }) },
      onAccepted: (fn) => {
        latest.on('update', fn);
        return () => latest.off('update', fn);
      },
    });
    services.push(alerts);
  }
  const ota = o.ota
    ? new OtaClient({
        config: config.ota,
        dataDir: dir,
        gatewayId: config.gateway.id,
        version: VERSION,
        log,
        health,
        uplinkOnline: () => queue.uplink?.isOnline ?? null,
        requestRestart: () => undefined,
        installRoot: join(dir, 'install'),
      })
    : undefined;
  if (ota) services.push(ota);
  // What the lead adds to src/gateway.ts: the sources from the composition root's pieces, the page
  // as a service, and its routes on the metrics server.
  const sources = statusSourcesFrom({
    health,
    version: VERSION,
    uptimeMs: ctx.uptimeMs,
    devices,
    latest,
    queue,
    history,
    deadletters: deadletters.store,
    alerts,
    ota,
    ...(o.inspection
      ? { inspection: () => o.inspection!.doc, inspectionImage: (id: string) => o.inspection!.images.get(id) }
      : {}),
  });
  const pageConfig = Value.Default(StatusPageConfigSchema, { update_interval_ms: 500, ...o.page }) as StatusPageConfig;
  const page = new StatusPage({
    config: pageConfig,
    bindHost: o.claimHost ?? config.metrics.host,
    tokens: () => (o.token ? [o.token] : []),
    sources,
    log: log.child({ mod: 'status' }),
    ...(o.assetsDir ? { assetsDir: o.assetsDir } : {}),
  });
  const metrics = new MetricsServer({ config: config.metrics, registry, log, health, routes: page.routes });
  services.push(page, metrics);
  devices.startFlushing(1000);
  deadletters.start();
  const lc = new Lifecycle(services, log);
  started.lifecycle = lc;
  await lc.start();
  return {
    url: `http://127.0.0.1:${metrics.port}`,
    brokerPort,
    page,
    metrics,
    logText: () => lines.join(''),
    setUnhealthy: (v) => (unhealthy = v),
    close: async () => {
      await lc.stop(3000);
      clearInterval(historyTimer);
      loop.stop();
      history.flush();
      deadletters.close();
      devices.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
