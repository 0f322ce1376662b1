import type { ConfigCheck } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import type { GatewayContext } from '../context.js';
import type { DriverTypeRegistry } from '../drivers/registry.js';
import type { DriverType } from '../drivers/types.js';
import type { Service } from '../lifecycle/service.js';
import type { MgmtEntries } from '../mgmt/registry.js';
import type { Publisher } from '../publisher/types.js';
import type { UplinkView } from '../queue/metrics.js';
import type { OutboxAccess } from '../queue/port.js';
import type { MgmtRegistry } from '../mgmt/registry.js';
import type { Db } from '../store/db.js';
import type { CommandHandler, CommandRouter } from '../commands/router.js';
import type { AlertsView } from '../analytics/service.js';
import type { HistoryStore } from '../history/store.js';
import type { HttpRoute } from '../metrics/server.js';
import type { OtaView } from '../ota/client.js';
import type { Resource } from '../coap/router.js';

/**
 * The local MQTT broker as other modules see it (BrokerService satisfies it): publish on behalf of
 * the gateway (bypasses the ACL, never ingested: aedes runs authorizePublish only for client
 * packets) and see what clients publish on a filter.
 */
export interface LocalBus {
  publish(packet: { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean }): Promise<void>;
  /** Register before start; handlers run on the broker's delivery path. */
  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): void;
}

/**
 * Seams one capability offers the ones after it in the module list. Typed: a module reads
 * `ctx.provided.outbox`, never a `unknown` cast back. Add a field here for a new seam.
 */
export interface Provided {
  outbox: OutboxAccess;
  uplink: UplinkView;
  broker: LocalBus;
  publisher: Publisher;
  /** Recent readings per device (history module). */
  history: HistoryStore;
  /** Open and recent alerts (analytics module). */
  alerts: { view(): AlertsView };
  /** OTA state (ota module). */
  ota: { view(): OtaView };
  /** The /mgmt/inspection document (vision module). */
  inspection: { view(): object; reviewImage(file: string): { type: string; body: Buffer } | undefined };
  /** The management tokens as they are now (coap module: /mgmt); the status page checks them. */
  mgmtTokens: () => readonly string[];
  /** More routes on the HTTP listener of the metrics module (the status page). */
  httpRoutes: readonly HttpRoute[];
  /** Adds a CoAP resource at run time (coap module); plugins mount /plugins/{name}/... here. Returns the removal. */
  coapResources: (r: Resource) => () => void;
}

/** What the composition root hands to a builder: the context without the database handle. */
export interface ModuleContext extends Omit<GatewayContext, 'db'> {
  /** Seams of the modules before this one (filled as the list is walked; read them at build or later). */
  readonly provided: Readonly<Partial<Provided>>;
  /** Every driver type of every enabled module (the drivers module instantiates from it). */
  readonly driverTypes: DriverTypeRegistry;
  /** The management registry; builders return their entries, the management API reads it. */
  readonly mgmt: MgmtRegistry;
  /** Config checks beyond the schema against this module list (for PUT /mgmt/config). */
  readonly checkConfig: ConfigCheck;
  /** `commands/{deviceId}` routing (handlers of every module; the cloud downlink executes through it). */
  readonly commands: CommandRouter;
}

/** What a builder returns; every field optional. */
export interface Capability {
  /** In start order; the root starts every module's services in list order and stops in reverse. */
  services?: readonly Service[];
  provides?: Partial<Provided>;
  /** Management views (/mgmt/queues, /mgmt/status parts, extra /mgmt/{name} views). */
  mgmt?: MgmtEntries;
  /** `commands/{deviceId}` handlers (first that owns the device wins). */
  commands?: readonly CommandHandler[];
}

/** A driver type of any entry shape (method parameters are bivariant; the registry keys by name). */
export type AnyDriverType = DriverType<never>;

/**
 * One capability: a name, when it is on, the driver types it adds (known without building, so
 * check-config can report an unknown `type:`), and the builder.
 */
export interface CapabilityModule {
  readonly name: string;
  enabled(config: GatewayConfig): boolean;
  /** Driver types this module contributes for this config; read before any module is built. */
  driverTypes?(config: GatewayConfig): readonly AnyDriverType[];
  /**
   * Only modules that own tables get the database handle (STYLE: dependencies in, not reached
   * for); the others receive `undefined`.
   */
  readonly ownsTables?: boolean;
  build(ctx: ModuleContext, db: Db | undefined): Capability;
}
