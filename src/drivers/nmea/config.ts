import { Type, type Static } from '@sinclair/typebox';
import { commonDriverKeys, serialPortKeys } from '../common-config.js';

export const NmeaConfigSchema = Type.Object(
  {
    ...commonDriverKeys('nmea'),
    ...serialPortKeys(4800),
    sentences: Type.Array(Type.Union([Type.Literal('GGA'), Type.Literal('RMC'), Type.Literal('VTG')]), {
      default: ['GGA', 'RMC', 'VTG'],
      minItems: 1,
      uniqueItems: true,
      description: 'Sentences used (any talker: GP, GN, GL...); others are ignored.',
    }),
    max_line_length: Type.Integer({
      minimum: 82,
      maximum: 4096,
      default: 256,
      description: 'NMEA 0183 allows 82 characters; longer lines are discarded and counted.',
    }),
    epoch_timeout_ms: Type.Integer({
      minimum: 10,
      maximum: 10000,
      default: 300,
      description:
        'Sentences of one fix are merged; the fix is emitted when the next epoch starts or after this idle time.',
    }),
    stale_after_ms: Type.Integer({
      minimum: 0,
      maximum: 86400000,
      default: 5000,
      description: 'Report the receiver offline ("silent") when no valid sentence arrived for this long; 0 disables.',
    }),
  },
  { additionalProperties: false },
);
export type NmeaConfig = Static<typeof NmeaConfigSchema>;
