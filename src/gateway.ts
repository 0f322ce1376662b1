import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { checkAgainstModules, collectDriverTypes, MODULES } from './capability/modules.js';
import type { CapabilityModule, ModuleContext, Provided } from './capability/types.js';
import { CommandRouter } from './commands/router.js';
import { ConfigError } from './config/load.js';
import type { GatewayConfig } from './config/schema.js';
import type { GatewayContext, GatewayHealth } from './context.js';
import { DeadLetters } from './deadletters/index.js';
import { DeviceRegistry } from './devices/registry.js';
import type { DriverTypeRegistry } from './drivers/registry.js';
import { Lifecycle } from './lifecycle/lifecycle.js';
import { LoopMonitor } from './lifecycle/loop-monitor.js';
import type { Service } from './lifecycle/service.js';
import type { Logger } from './log/logger.js';
import { createRegistry } from './metrics/server.js';
import { MgmtRegistry } from './mgmt/registry.js';
import { LatestValues } from './pipeline/latest.js';
import { Pipeline } from './pipeline/pipeline.js';
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
  /** The capability modules in start order (default: MODULES, src/capability/modules.ts). */
  modules?: readonly CapabilityModule[];
}

/** A loop behind by more than this is not healthy (watchdog skips its ping, /mgmt/health says so). */
const MAX_LOOP_LAG_MS = 1000;

/**
 * The composition root: opens the store, walks the ordered module list (each builder returns its
 * services, seams, management entries and command handlers), owns the start order (list order)
 * and the reverse stop order. No capability is wired by hand here.
 */
export class Gateway {
  private readonly db: Db;
  private readonly registry: Registry;
  private readonly lifecycle: Lifecycle;
  private readonly loop = new LoopMonitor(MAX_LOOP_LAG_MS);
  private readonly notifier: SystemdNotifier;
  private readonly startedAt = performance.now();
  private readonly devices: DeviceRegistry;
  /** Refused payloads (device counters, dead-letter store); uplinked through the publisher module's publisher. */
  readonly deadletters: DeadLetters;
  private statusTimer: NodeJS.Timeout | undefined;
  readonly context: GatewayContext;
  readonly services: readonly Service[];
  /** Enabled modules in build order, with the services each contributed. */
  readonly modules: readonly { name: string; services: readonly Service[] }[];
  /** Every driver type of every enabled module (the drivers module instantiates from it). */
  readonly driverTypes: DriverTypeRegistry;
  /** /mgmt resources and views registered by the modules. */
  readonly mgmt = new MgmtRegistry();
  /** `commands/{deviceId}` handlers registered by the modules. */
  readonly commands: CommandRouter;
  /** The seams the modules provided (outbox, uplink, broker, publisher). */
  readonly provided: Readonly<Partial<Provided>>;

  constructor(private readonly opts: GatewayOptions) {
    const { config, log } = opts;
    const modules = opts.modules ?? MODULES;
    // Before anything is opened: an entry whose type no module registers could never start.
    const issues = checkAgainstModules(config, modules);
    if (issues.length > 0) throw new ConfigError(opts.configPath ?? 'config', issues);
    this.driverTypes = collectDriverTypes(config, modules);
    this.commands = new CommandRouter({ log: log.child({ mod: 'commands' }) });
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
    // What every module gets; the database handle only goes to modules that own tables.
    const base: Omit<GatewayContext, 'db'> = {
      config,
      configPath: opts.configPath,
      log,
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
    this.context = { ...base, db: this.db };
    const built = this.build(modules, base);
    this.modules = built.modules;
    this.provided = built.provided;
    this.services = built.modules.flatMap((m) => m.services);
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

  /**
   * Builds each enabled module in list order. A module sees the seams of the modules before it
   * (`ctx.provided`); only modules that own tables get the database handle.
   */
  private build(
    list: readonly CapabilityModule[],
    base: Omit<GatewayContext, 'db'>,
  ): {
    modules: { name: string; services: readonly Service[] }[];
    provided: Partial<Provided>;
  } {
    const provided: Partial<Provided> = {};
    const ctx: ModuleContext = {
      ...base,
      provided,
      driverTypes: this.driverTypes,
      mgmt: this.mgmt,
      checkConfig: (config) => checkAgainstModules(config, list),
      commands: this.commands,
    };
    const modules: { name: string; services: readonly Service[] }[] = [];
    for (const m of list) {
      if (!m.enabled(this.context.config)) continue;
      const cap = m.build(ctx, m.ownsTables ? this.db : undefined);
      for (const key of Object.keys(cap.provides ?? {}) as (keyof Provided)[]) {
        if (provided[key] !== undefined) throw new Error(`module ${m.name} provides "${key}" a second time`);
      }
      Object.assign(provided, cap.provides);
      if (cap.mgmt) this.mgmt.add(cap.mgmt);
      for (const h of cap.commands ?? []) this.commands.add(h);
      modules.push({ name: m.name, services: cap.services ?? [] });
    }
    // Commands arrive on the local broker; results go out through the publisher.
    if (provided.broker && provided.publisher && this.commands.names().length > 0)
      this.commands.attach(provided.broker, provided.publisher);
    // deadletters.uplink: refused payloads to the cloud (LOW) through the publisher, when there is an outbox.
    if (provided.outbox) this.deadletters.setPublisher(provided.publisher);
    return { modules, provided };
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
