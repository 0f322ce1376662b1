import type { Logger } from '../log/logger.js';
import type { Publisher } from '../publisher/types.js';
import type { RejectAction } from './config.js';

export interface RejectEvent {
  cameraId: string;
  frameId: string;
  partId: string | null;
  /** defective, uncertain, or the fail-safe reason. */
  reason: string;
}

interface SerialLike {
  write(data: string, cb: (err: Error | null | undefined) => void): boolean;
  close(cb?: (err: Error | null) => void): void;
  isOpen: boolean;
}

/**
 * Runs the configured reject actions for one part. `command` publishes on `commands/{device_id}`
 * locally (never uplinked): the driver that owns the device turns it into its write (a Modbus coil
 * or register through the driver command path), and any MQTT subscriber (a PLC gateway) sees it.
 * `serial` writes one line on a serial port. Each action is bounded by `timeoutMs`.
 */
export type RejectHook = (ev: RejectEvent) => void | Promise<void>;

export class RejectActuator {
  private readonly serials = new Map<string, Promise<SerialLike>>();
  private readonly hooks = new Set<RejectHook>();

  constructor(
    private readonly actions: readonly RejectAction[],
    private readonly publisher: Publisher,
    private readonly log: Logger,
    private readonly timeoutMs = 1000,
  ) {}

  get configured(): boolean {
    return this.hooks.size > 0 || this.actions.some((a) => a.kind !== 'none');
  }

  /**
   * A plugin's reject action (e.g. a vendor PLC protocol); runs beside the configured actions,
   * bounded by the same timeout; a throwing hook counts as a failed reject. Returns the removal.
   */
  addHook(fn: RejectHook): () => void {
    this.hooks.add(fn);
    return () => this.hooks.delete(fn);
  }

  /** Resolves when every action is done; rejects with the first failure (others still run). */
  async reject(ev: RejectEvent): Promise<void> {
    const runs = this.actions.map((a) => this.bounded(this.run(a, ev)));
    for (const h of this.hooks) runs.push(this.bounded(Promise.resolve().then(() => h(ev))));
    const res = await Promise.allSettled(runs);
    const failed = res.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
  }

  private bounded<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`reject action timed out after ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      p.then(
        (v) => {
          clearTimeout(t);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(t);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  private async run(a: RejectAction, ev: RejectEvent): Promise<void> {
    if (a.kind === 'command') {
      const body = {
        ...a.command,
        part_id: ev.partId ?? ev.frameId,
        camera_id: ev.cameraId,
        frame_id: ev.frameId,
        reason: ev.reason,
      };
      await this.publisher.publish({
        topic: `commands/${a.device_id}`,
        payload: JSON.stringify(body),
        local: true,
        uplink: false,
        qos: 1,
        priority: 'CRITICAL',
        source: 'vision',
        labels: ['reject', ev.reason],
      });
    } else if (a.kind === 'serial') {
      const port = await this.serial(a.port, a.baud);
      const line = a.line.replaceAll('{partId}', ev.partId ?? ev.frameId).replaceAll('{cameraId}', ev.cameraId) + '\n';
      await new Promise<void>((resolve, reject) => port.write(line, (err) => (err ? reject(err) : resolve())));
    }
  }

  private serial(path: string, baud: number): Promise<SerialLike> {
    let p = this.serials.get(path);
    if (!p) {
      p = (async () => {
        const { SerialPort } = await import('serialport');
        return await new Promise<SerialLike>((resolve, reject) => {
          const sp = new SerialPort({ path, baudRate: baud }, (err) => (err ? reject(err) : resolve(sp)));
          sp.on('close', () => this.serials.delete(path));
          sp.on('error', (e) => this.log.warn({ err: e.message, port: path }, 'reject serial port error'));
        });
      })();
      p.catch(() => this.serials.delete(path));
      this.serials.set(path, p);
    }
    return p;
  }

  async close(): Promise<void> {
    for (const p of this.serials.values()) {
      const sp = await p.catch(() => null);
      if (sp?.isOpen) await new Promise<void>((r) => sp.close(() => r()));
    }
    this.serials.clear();
  }
}
