import { Type, type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

export const PublisherConfigSchema = section(
  {
    local_readings: Type.Boolean({
      default: true,
      description:
        'Publish every accepted reading (serial, simulated, CoAP, downstream CoAP, ...) as JSON on the local sensors/{id}/data; readings that arrived on that topic are not published again.',
    }),
    local_readings_qos: Type.Union([Type.Literal(0), Type.Literal(1)], {
      default: 0,
      description:
        'QoS of those publishes. 1 queues them for offline persistent sessions (one more SQLite write per reading and subscriber).',
    }),
  },
  'The local side of the publisher: readings and messages on the local broker (docs/publisher.md).',
);
export type PublisherConfig = Static<typeof PublisherConfigSchema>;
