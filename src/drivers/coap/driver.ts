import { CoapClient, type CoapResponse } from 'node-coap-client';
import { Origin } from 'node-coap-client/build/lib/Origin.js';
import { backoffDelay } from '../backoff.js';
import type { Driver, DriverContext, DriverType } from '../types.js';
import { CoapDriverConfigSchema, type CoapDriverConfig } from './config.js';
import { installDtlsGuard } from './dtls-guard.js';
import { mapPayload, PayloadError } from './map.js';

/** `coap`: polls or observes one resource of a downstream CoAP device (optionally DTLS-PSK). */
export const coapDriverType: DriverType<CoapDriverConfig> = {
  type: 'coap',
  schema: CoapDriverConfigSchema,
  source: 'coap-poll',
  transport: 'coap-poll',
  create(c, ctx) {
    return new CoapDeviceDriver(c, ctx);
  },
};

class TimeoutError extends Error {}

/**
 * node-coap-client keeps one static connection table for the process, so every driver shares it;
 * each driver only touches its own URL (and resets only its own origin after a timeout).
 */
export class CoapDeviceDriver implements Driver {
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = false;
  private observing = false;
  private lastNotification = 0;
  private readonly url: URL;
  /** An Origin object: reset() with a string would match every port of the host. */
  private readonly origin: Origin;

  constructor(
    private readonly c: CoapDriverConfig,
    private readonly ctx: DriverContext,
  ) {
    this.url = new URL(c.url);
    this.origin = Origin.fromUrl(this.url);
    if (c.psk && this.url.protocol === 'coaps:') {
      installDtlsGuard();
      CoapClient.setSecurityParams(this.url.hostname, { psk: { [c.psk.identity]: c.psk.key } });
    }
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.observing) CoapClient.stopObserving(this.c.url);
    this.observing = false;
    // Close this origin's socket (node-coap-client keeps it open otherwise and the process
    // would never exit). Drivers sharing the origin reconnect on their next request.
    CoapClient.reset(this.origin);
  }

  devices(): readonly string[] {
    return [this.c.id];
  }

  detail(): Record<string, unknown> {
    return { url: this.c.url, mode: this.c.mode, observing: this.observing, attempt: this.attempt };
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void (this.c.mode === 'observe' ? this.observe() : this.poll()), ms);
  }

  private async poll(): Promise<void> {
    try {
      const res = await this.withTimeout(
        CoapClient.request(this.c.url, 'get', undefined, { keepAlive: true, confirmable: true }),
      );
      if (this.stopped) return;
      this.take(res);
      this.schedule(this.c.interval_ms);
    } catch (err) {
      this.failed(err);
    }
  }

  private async observe(): Promise<void> {
    // node-coap-client resolves observe() once the first response arrived; the first
    // representation is also delivered to the callback.
    try {
      this.lastNotification = performance.now();
      await this.withTimeout(
        CoapClient.observe(this.c.url, 'get', (res) => {
          this.lastNotification = performance.now();
          this.take(res);
        }),
      );
      if (this.stopped) return CoapClient.stopObserving(this.c.url);
      this.observing = true;
      this.watchSilence();
    } catch (err) {
      this.failed(err);
    }
  }

  /** RFC 7641 §3.3.1: without notifications for too long, the registration is presumed lost. */
  private watchSilence(): void {
    const check = () => {
      if (this.stopped || !this.observing) return;
      if (performance.now() - this.lastNotification > this.c.max_silence_ms) {
        CoapClient.stopObserving(this.c.url);
        this.observing = false;
        this.failed(new TimeoutError(`no notification for ${this.c.max_silence_ms} ms`));
        return;
      }
      this.timer = setTimeout(check, Math.min(this.c.max_silence_ms, 5000));
    };
    this.timer = setTimeout(check, Math.min(this.c.max_silence_ms, 5000));
  }

  private take(res: CoapResponse): void {
    const code = res.code.toString();
    if (!code.startsWith('2.')) {
      this.ctx.error('io', { detail: `${this.c.url} answered ${code}` });
      return;
    }
    try {
      const samples = mapPayload(res.payload ?? Buffer.alloc(0), res.format ?? undefined, {
        deviceId: this.c.id,
        valueName: this.c.value_name,
        unit: this.c.unit,
        nowMs: Date.now(),
        onProblem: (detail) => this.ctx.error('bad_line', { detail }),
      });
      this.attempt = 0;
      this.ctx.setConnected(true);
      this.ctx.emit(samples);
    } catch (err) {
      if (!(err instanceof PayloadError)) throw err;
      this.ctx.error('bad_line', { detail: err.message });
    }
  }

  private failed(err: unknown): void {
    if (this.stopped) return;
    const timeout = err instanceof TimeoutError;
    this.ctx.error(timeout ? 'timeout' : 'io', { detail: (err as Error).message ?? String(err) });
    this.ctx.setConnected(false, timeout ? 'timeout' : 'unreachable');
    if (timeout) CoapClient.reset(this.origin);
    this.ctx.reconnecting();
    this.schedule(backoffDelay(this.attempt++, this.c.backoff.initial_ms, this.c.backoff.max_ms));
  }

  private withTimeout<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p.finally(() => clearTimeout(timer)),
      new Promise<T>((_, reject) => {
        timer = setTimeout(
          () => reject(new TimeoutError(`no answer from ${this.c.url} in ${this.c.timeout_ms} ms`)),
          this.c.timeout_ms,
        );
      }),
    ]);
  }
}
