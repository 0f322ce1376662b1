import type { Priority } from '../queue/types.js';

/**
 * One message that is not a reading (alert, device status, inspection result, plugin message,
 * dead letter) handed to the one publisher, which fans it out to the local broker and/or the
 * outbox (DESIGN: "alerts, device status, inspection results, plugin messages → publisher").
 */
export interface PublishRequest {
  /** Local topic, e.g. `alerts/press-07`; uplinked as `{uplink.topic_prefix}/{topic}`. */
  topic: string;
  /** Bytes as they are; a string is sent as UTF-8. */
  payload: Uint8Array | string;
  /** Local MQTT QoS (default 1). */
  qos?: 0 | 1 | 2;
  /** Retained on the local broker (default false). Not carried to the cloud: the outbox stores no retain flag. */
  retain?: boolean;
  /** Uplink class; absent: the queue's classification rules decide (topic, source, labels). */
  priority?: Priority;
  /** Free labels matched by queue rules' `label` (e.g. `defective`). */
  labels?: readonly string[];
  /** Uplink time to live in seconds; absent: the class/rule TTL; 0: never expires. */
  ttlS?: number;
  /** Producer kind, matched by queue rules' `source` (`alert`, `vision`, `plugin`, `system`, ...). */
  source?: string;
  /** MQTT 5 content type on the uplink (default `application/json`). */
  contentType?: string;
  /** Publish on the local broker (default true; ignored when the broker is disabled). */
  local?: boolean;
  /** Commit to the outbox for the cloud (default true; ignored when the queue is disabled). */
  uplink?: boolean;
}

/** What happened to a request: resolved after the local publish and the outbox commit. */
export interface PublishOutcome {
  local: boolean;
  uplink: boolean;
}

export interface Publisher {
  /** Rejects when the outbox commit fails (disk full): the message was not accepted for the cloud. */
  publish(req: PublishRequest): Promise<PublishOutcome>;
}
