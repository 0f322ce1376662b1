/**
 * A unit the composition root starts in dependency order and stops in reverse.
 * `start` resolves only when the service is ready (listening, connected or retrying in the
 * background): READY is sent to systemd when every enabled service has started.
 */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Stop accepting, flush, release handles. Must be idempotent and must not throw. */
  stop(): Promise<void>;
  /** Cheap, synchronous view used by /mgmt/health, STATUS= and the watchdog. */
  health(): ServiceHealth;
}

export interface ServiceHealth {
  /** false means the gateway is not healthy (a listener died, the store is unusable). */
  ok: boolean;
  /** One-word state: "listening", "online", "offline", "retrying", "stopped"... */
  state: string;
  detail?: Record<string, unknown>;
}
