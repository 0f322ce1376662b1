import type { Logger } from '../log/logger.js';
import { GatewayError } from '../errors.js';
import type { Service, ServiceHealth } from './service.js';

/**
 * Starts services in the order given (the composition root lists dependencies first) and stops
 * them in reverse. If one fails to start, the ones already started are stopped before the error
 * propagates: never a half-alive process.
 */
export class Lifecycle {
  private readonly started: Service[] = [];
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly services: readonly Service[],
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    for (const svc of this.services) {
      const t0 = performance.now();
      try {
        await svc.start();
      } catch (err) {
        this.log.error({ err, service: svc.name }, `service ${svc.name} failed to start`);
        await this.stop(5000);
        // Keep a precise code (EGW_PORT_IN_USE, EGW_MQTT_TLS...) where the service gave one.
        const code = err instanceof GatewayError ? err.code : 'EGW_SERVICE_START';
        throw new GatewayError(code, `service ${svc.name} failed to start: ${(err as Error).message}`, { cause: err });
      }
      this.started.push(svc);
      this.log.debug({ service: svc.name, ms: Math.round(performance.now() - t0) }, 'service started');
    }
  }

  /** Stops in reverse order; each service gets what remains of the bound. Resolves even on timeout. */
  stop(boundMs: number): Promise<void> {
    this.stopping ??= this.doStop(boundMs);
    return this.stopping;
  }

  private async doStop(boundMs: number): Promise<void> {
    const deadline = performance.now() + boundMs;
    while (this.started.length > 0) {
      const svc = this.started.pop()!;
      const left = Math.max(0, deadline - performance.now());
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        svc.stop().then(
          () => false,
          (err: unknown) => {
            this.log.error({ err, service: svc.name }, 'service stop failed');
            return false;
          },
        ),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), left))),
      ]);
      clearTimeout(timer);
      if (timedOut) this.log.warn({ service: svc.name, code: 'EGW_SHUTDOWN_TIMEOUT' }, 'service did not stop in time');
    }
  }

  health(): Record<string, ServiceHealth> {
    const out: Record<string, ServiceHealth> = {};
    for (const svc of this.services) {
      out[svc.name] = this.started.includes(svc) ? svc.health() : { ok: false, state: 'stopped' };
    }
    return out;
  }
}
