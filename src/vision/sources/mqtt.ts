import type { FrameSink, FrameSource, RawFormat } from '../types.js';

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

const prop = (props: FrameMessageProps | undefined, name: string): string | undefined => {
  const v = props?.userProperties?.[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Raw pixels instead of an encoded image: user properties `format` (`rgb24` or `gray8`), `width`,
 * `height` (whole numbers). A frame whose properties do not say that is still a part: it is passed
 * on as invalid (counted frame error, fail-safe), never guessed at.
 */
function rawFormat(props: FrameMessageProps | undefined): RawFormat | string | undefined {
  const format = prop(props, 'format');
  if (format === undefined) return undefined;
  const w = prop(props, 'width') ?? '';
  const h = prop(props, 'height') ?? '';
  if (format !== 'rgb24' && format !== 'gray8')
    return `user property format "${format.slice(0, 32)}" is not rgb24 or gray8`;
  if (!/^\d{1,6}$/.test(w) || !/^\d{1,6}$/.test(h))
    return `raw ${format} needs whole-number width and height user properties (got "${w.slice(0, 16)}", "${h.slice(0, 16)}")`;
  return { width: Number(w), height: Number(h), channels: format === 'rgb24' ? 3 : 1 };
}

/**
 * Frames published on the local broker: `camera/{id}/image` (payload = the image bytes), the part
 * id in the user property `part_id` (MQTT 5) or as a topic suffix `camera/{id}/image/{partId}`.
 * With the user property `format` (MQTT 5) the payload is raw pixels (see rawFormat).
 */
export class MqttSource implements FrameSource {
  readonly kind = 'mqtt';
  private unsubs: (() => void)[] = [];
  private seq = 0;
  private stopped = false;
  private readonly counts = { frames: 0, raw: 0, badFormat: 0, badPartId: 0 };

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
      const raw = rawFormat(props);
      if (typeof raw === 'string') this.counts.badFormat++;
      else if (raw) this.counts.raw++;
      sink({
        cameraId: this.cameraId,
        frameId: partId ?? `${this.cameraId}-${captureTs}-${this.seq}`,
        partId,
        captureTs,
        image: payload,
        ...(typeof raw === 'string' ? { invalid: raw } : raw ? { raw } : {}),
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
