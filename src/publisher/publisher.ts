import type { Logger } from '../log/logger.js';
import { RateLimitedLog } from '../log/rate-limited.js';
import type { OutboundMessage } from '../queue/types.js';
import type { PublishOutcome, PublishRequest, Publisher } from './types.js';

/** The local broker as the publisher needs it (BrokerService satisfies it). */
export interface LocalTarget {
  publish(packet: { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean }): Promise<void>;
}

/** The outbox as the publisher needs it (Outbox satisfies it). */
export interface UplinkTarget {
  enqueue(msg: OutboundMessage): Promise<void>;
}

export interface GatewayPublisherOptions {
  log: Logger;
  /** Absent when the broker is disabled: `local` is then ignored (outcome.local = false). */
  local?: LocalTarget;
  /** Absent when the queue is disabled: `uplink` is then ignored (outcome.uplink = false). */
  uplink?: UplinkTarget;
}

/**
 * The one publisher of non-reading messages (DESIGN data flow: "alerts, device status, inspection
 * results, plugin messages → publisher → local MQTT and/or outbox"). Both legs run at once; the
 * promise settles after both: it rejects only when the outbox commit fails (the message was not
 * accepted for the cloud, so the producer must not treat it as sent). A local publish that fails
 * (broker stopping) is logged and reported as `local: false`: local subscribers get no delivery
 * guarantee beyond MQTT's own.
 */
export class GatewayPublisher implements Publisher {
  private readonly warn: RateLimitedLog;
  readonly counters = { local: 0, uplink: 0, localFailures: 0, uplinkFailures: 0 };

  constructor(private readonly opts: GatewayPublisherOptions) {
    this.warn = new RateLimitedLog(opts.log);
  }

  async publish(req: PublishRequest): Promise<PublishOutcome> {
    const payload =
      typeof req.payload === 'string'
        ? Buffer.from(req.payload, 'utf8')
        : Buffer.from(req.payload.buffer, req.payload.byteOffset, req.payload.byteLength);
    const local = req.local !== false ? this.opts.local : undefined;
    const uplink = req.uplink !== false ? this.opts.uplink : undefined;
    const localDone = local
      ? local.publish({ topic: req.topic, payload, qos: req.qos ?? 1, retain: req.retain ?? false }).then(
          () => {
            this.counters.local++;
            return true;
          },
          (err: unknown) => {
            this.counters.localFailures++;
            this.warn.warn(`local:${req.topic}`, { err, topic: req.topic }, 'local publish failed');
            return false;
          },
        )
      : Promise.resolve(false);
    let uplinkDone: Promise<boolean> = Promise.resolve(false);
    if (uplink) {
      const msg: OutboundMessage = { topic: req.topic, payload };
      if (req.priority !== undefined) msg.priority = req.priority;
      if (req.ttlS !== undefined) msg.ttlS = req.ttlS;
      if (req.source !== undefined) msg.source = req.source;
      if (req.labels !== undefined) msg.labels = req.labels;
      if (req.contentType !== undefined) msg.contentType = req.contentType;
      uplinkDone = uplink.enqueue(msg).then(
        () => {
          this.counters.uplink++;
          return true;
        },
        (err: unknown) => {
          this.counters.uplinkFailures++;
          throw err;
        },
      );
    }
    // Wait for the local leg even when the commit fails, so nothing is left running behind the caller.
    const [l, u] = await Promise.allSettled([localDone, uplinkDone]);
    if (u.status === 'rejected') throw u.reason;
    return { local: l.status === 'fulfilled' && l.value, uplink: u.value };
  }
}
