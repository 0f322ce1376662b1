import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { BrokerService } from './broker/broker.js';
import type { GatewayConfig } from './config/schema.js';
import type { GatewayContext, GatewayHealth } from './context.js';
import { DeadLetters } from './deadletters/index.js';
import { DeviceRegistry } from './devices/registry.js';
import { buildDrivers, type CommandResult, type DriverManager } from './drivers/index.js';
import { Lifecycle } from './lifecycle/lifecycle.js';
import { LoopMonitor } from './lifecycle/loop-monitor.js';
import type { Service } from './lifecycle/service.js';
import type { Logger } from './log/logger.js';
import { createRegistry, MetricsServer } from './metrics/server.js';
import { buildCoap } from './coap/index.js';
import { LatestValues } from './pipeline/latest.js';
import { Pipeline } from './pipeline/pipeline.js';
import { buildQueue } from './queue/index.js';
import { openDatabase, type Db } from './store/db.js';
import { SystemdNotifier } from './systemd/notify.js';
import { VERSION } from './version.js';

export interface GatewayOptions {
  config: GatewayConfig;
  configPath?: string;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  /** Called when a restart is requested (main exits so systemd starts a fresh process). */
  onRestart?: (reason: string) => void;
}

/** A loop behind by more than this is not healthy (watchdog skips its ping, /mgmt/health says so). */
const MAX_LOOP_LAG_MS = 1000;

/**
 * The composition root: opens the store, wires each capability from the config, owns the
 * start order (dependencies first) and the reverse stop order.
 */
export class Gateway {
  private readonly db: Db;
  private readonly registry: Registry;
  private readonly lifecycle: Lifecycle;
  private readonly loop = new LoopMonitor(MAX_LOOP_LAG_MS);
  private readonly notifier: SystemdNotifier;
  private readonly startedAt = performance.now();
  private readonly devices: DeviceRegistry;
  /** Refused payloads (device counters, dead-letter store); the lead's publisher: deadletters.setPublisher. */
  readonly deadletters: DeadLetters;
  private statusTimer: NodeJS.Timeout | undefined;
  readonly context: GatewayContext;
  readonly services: readonly Service[];

  constructor(private readonly opts: GatewayOptions) {
    const { config, log } = opts;
    this.notifier = new SystemdNotifier(log.child({ mod: 'systemd' }), opts.env);
    this.db = openDatabase({
      path: join(config.gateway.data_dir, 'gateway.db'),
      durability: config.gateway.durability,
    });
    this.registry = createRegistry();
    this.devices = new DeviceRegistry(this.db);
    const pipeline = new Pipeline({ log: log.child({ mod: 'pipeline' }), maxPending: 100000 });
    this.deadletters = new DeadLetters({
      db: this.db,
      config: config.deadletters,
      devices: this.devices,
      pipeline,
      log: log.child({ mod: 'deadletters' }),
      registry: this.registry,
    });
    const latest = new LatestValues();
    pipeline.addSink(latest);
    this.context = {
      config,
      configPath: opts.configPath,
      log,
      db: this.db,
      pipeline,
      latest,
      devices: this.devices,
      deadletters: this.deadletters.store,
      metrics: this.registry,
      version: VERSION,
      uptimeMs: () => performance.now() - this.startedAt,
      health: () => this.health(),
      requestRestart: (reason) => opts.onRestart?.(reason),
    };
    this.services = buildServices(this.context);
    this.lifecycle = new Lifecycle(this.services, log.child({ mod: 'lifecycle' }));
  }

  async start(): Promise<void> {
    this.loop.start();
    this.devices.startFlushing();
    this.deadletters.start();
    try {
      await this.lifecycle.start();
    } catch (err) {
      this.closeStore();
      throw err;
    }
    const summary = this.statusLine();
    this.opts.log.info({ version: VERSION, services: this.services.map((s) => s.name) }, `gateway ready: ${summary}`);
    await this.notifier.ready(summary);
    this.notifier.startWatchdog(() => this.health().ok);
    this.statusTimer = setInterval(() => void this.notifier.status(this.statusLine()), 30000);
    this.statusTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.statusTimer);
    this.notifier.stopping();
    this.notifier.stopWatchdog();
    await this.lifecycle.stop(this.opts.config.gateway.shutdown_timeout_ms);
    this.loop.stop();
    this.closeStore();
  }

  health(): GatewayHealth {
    const services = this.lifecycle.health();
    const loopOk = this.loop.responsive();
    return {
      ok: loopOk && Object.values(services).every((s) => s.ok),
      loopLagMs: Math.round(this.loop.lagMs()),
      loopP99Ms: Math.round(this.loop.p99Ms() * 10) / 10,
      services,
    };
  }

  /** One line for systemd STATUS= and the ready log. */
  statusLine(): string {
    const parts = this.services.map((s) => `${s.name} ${s.health().state}`);
    return parts.length ? parts.join(', ') : 'no services enabled';
  }

  private closeStore(): void {
    try {
      this.deadletters.close();
      this.devices.close();
      this.db.close();
    } catch (err) {
      this.opts.log.error({ err }, 'closing the state database failed');
    }
  }
}

/**
 * The start order: sinks before sources, so nothing is accepted before it can be stored; the
 * metrics endpoint last so READY means everything is listening. Each capability adds its line here.
 */
function buildServices(ctx: GatewayContext): Service[] {
  const { config, log } = ctx;
  const services: Service[] = [];
  // The outbox sink and the uplink come first: sinks before sources, so nothing is acknowledged
  // before it can be committed. Producers of alerts/status/results use queue?.outbox.enqueue(...).
  const queue = config.queue.enabled ? buildQueue(ctx) : undefined;
  if (queue) services.push(...queue.services);
  let broker: BrokerService | undefined;
  if (config.broker.enabled) {
    const brokerLog = log.child({ mod: 'broker' });
    const { pipeline, devices, metrics: registry, db } = ctx;
    broker = new BrokerService({ config: config.broker, log: brokerLog, pipeline, devices, registry, db });
    services.push(broker);
  }
  // CoAP ingest + /mgmt. Queue/uplink/OTA fill the management views later with
  // coap.mgmt?.provide('queues', () => ...), provide('uplink', ...), provide('ota', {...}).
  if (config.coap.enabled) {
    const coap = buildCoap(ctx);
    services.push(...coap.services);
    if (queue) {
      coap.mgmt?.provide('queues', queue.snapshot);
      coap.mgmt?.provide('uplink', queue.uplinkState);
    }
  }
  // Sensor drivers (serial, simulated). Commands: drivers.manager.handleCommand(deviceId, payload).
  if (config.drivers.length > 0) {
    const { manager } = buildDrivers(ctx);
    services.push(manager);
    if (broker) routeCommands(broker, manager, log.child({ mod: 'commands' }));
  }
  if (config.metrics.enabled) {
    services.push(
      new MetricsServer({ config: config.metrics, registry: ctx.metrics, log: log.child({ mod: 'metrics' }) }),
    );
  }
  return services;
}

/**
 * `commands/{deviceId}` for a device a driver owns (Modbus registers, ...) goes to that driver;
 * the outcome is published on `devices/{deviceId}/command_result` for whoever sent it.
 */
function routeCommands(broker: BrokerService, drivers: DriverManager, log: Logger): void {
  broker.subscribe('commands/+', (topic, payload) => {
    const deviceId = topic.slice('commands/'.length);
    if (!drivers.ownsDevice(deviceId)) return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      body = undefined;
    }
    const reply = (result: CommandResult) =>
      broker
        .publish({
          topic: `devices/${deviceId}/command_result`,
          payload: Buffer.from(JSON.stringify(result)),
          qos: 1,
          retain: false,
        })
        .catch((err: unknown) => log.warn({ err, deviceId }, 'cannot publish command result'));
    if (body === undefined) {
      void reply({ ok: false, error: 'command payload is not JSON' });
      return;
    }
    void drivers.handleCommand(deviceId, body).then((result) => {
      if (!result) return;
      log.info({ deviceId, ok: result.ok, error: result.error }, 'device command handled');
      void reply(result);
    });
  });
}
