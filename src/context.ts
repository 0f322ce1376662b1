import type { Registry } from 'prom-client';
import type { GatewayConfig } from './config/schema.js';
import type { DeadLetterStore } from './deadletters/store.js';
import type { DeviceRegistry } from './devices/registry.js';
import type { Logger } from './log/logger.js';
import type { LatestValues } from './pipeline/latest.js';
import type { Pipeline } from './pipeline/pipeline.js';
import type { Db } from './store/db.js';
import type { ServiceHealth } from './lifecycle/service.js';

/**
 * The composition root's context. Capability modules get it without `db` (only modules that own
 * tables receive the handle) plus the seams of earlier modules: `ModuleContext` in
 * src/capability/types.ts. Modules take the parts they need; nothing here is a global.
 */
export interface GatewayContext {
  readonly config: GatewayConfig;
  /** Path of the YAML the config came from (for /mgmt/config PUT), if any. */
  readonly configPath: string | undefined;
  readonly log: Logger;
  readonly db: Db;
  readonly pipeline: Pipeline;
  readonly latest: LatestValues;
  readonly devices: DeviceRegistry;
  /** Refused payloads (/mgmt/deadletters); undefined when deadletters.enabled is false. */
  readonly deadletters?: DeadLetterStore | undefined;
  readonly metrics: Registry;
  readonly version: string;
  /** Monotonic ms since the process started serving. */
  uptimeMs(): number;
  /** Overall health: loop responsive and every enabled service up. */
  health(): GatewayHealth;
  /** Asks the process to restart (exit 75 after a graceful stop; the unit restarts on it: src/lifecycle/exit-codes.ts). */
  requestRestart(reason: string): void;
}

export interface GatewayHealth {
  ok: boolean;
  loopLagMs: number;
  loopP99Ms: number;
  services: Record<string, ServiceHealth>;
}
