import type { FrameSink, FrameSource } from '../types.js';

/** MQTT 5 user properties as mqtt.js/aedes deliver them. */
export interface FrameMessageProps {
  userProperties?: Record<string, string | string[]>;
}

/** Subscribes to a local topic filter; may return (or resolve to) the unsubscribe. */
export type SubscribeFn = (
  filter: string,
  handler: (topic: string, payload: Buffer, props?: FrameMessageProps) => void,
) => void | (() => void) | Promise<void | (() => void)>;

const PART_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * Frames published on the local broker: `camera/{id}/image` (payload = the image bytes), the part
 * id in the user property `part_id` (MQTT 5) or as a topic suffix `camera/{id}/image/{partId}`.
 */
export class MqttSource implements FrameSource {
  readonly kind = 'mqtt';
  private unsubs: (() => void)[] = [];
  private seq = 0;
  private stopped = false;
  private readonly counts = { frames: 0, badPartId: 0 };

  constructor(
    readonly cameraId: string,
    private readonly subscribe: SubscribeFn,
  ) {}

  async start(sink: FrameSink): Promise<void> {
    const base = `camera/${this.cameraId}/image`;
    const handler = (topic: string, payload: Buffer, props?: FrameMessageProps) => {
      // A subscription without an unsubscribe keeps delivering after stop: ignore it here.
      if (this.stopped) return;
      const captureTs = Date.now();
      let partId: string | null = null;
      if (topic.length > base.length + 1) partId = topic.slice(base.length + 1);
      const up = props?.userProperties?.part_id;
      if (up !== undefined) partId = Array.isArray(up) ? (up[0] ?? null) : up;
      if (partId !== null && !PART_RE.test(partId)) {
        this.counts.badPartId++;
        partId = null;
      }
      this.seq++;
      this.counts.frames++;
      sink({
        cameraId: this.cameraId,
        frameId: partId ?? `${this.cameraId}-${captureTs}-${this.seq}`,
        partId,
        captureTs,
        image: payload,
      });
    };
    for (const filter of [base, `${base}/+`]) {
      const unsub = await this.subscribe(filter, handler);
      if (typeof unsub === 'function') this.unsubs.push(unsub);
    }
  }

  stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubs.splice(0)) u();
    return Promise.resolve();
  }

  view(): Record<string, unknown> {
    return { kind: this.kind, topic: `camera/${this.cameraId}/image[/{partId}]`, ...this.counts };
  }
}
