import { Type, type Static } from '@sinclair/typebox';
import { Secret } from '../../config/sections.js';
import { Backoff, commonDriverKeys } from '../common-config.js';

/** `type: coap` — a downstream CoAP device the gateway polls or observes (node-coap-client). */
export const CoapDriverConfigSchema = Type.Object(
  {
    ...commonDriverKeys('coap'),
    url: Type.String({
      pattern: '^coaps?://[^/\\s]+(/[^\\s]*)?$',
      description: 'Resource to read, e.g. coap://10.0.0.7/sensors/temp; coaps:// uses DTLS with the psk below.',
    }),
    mode: Type.Union([Type.Literal('poll'), Type.Literal('observe')], {
      default: 'poll',
      description: 'poll: GET every interval_ms. observe: register once (RFC 7641) and take every notification.',
    }),
    interval_ms: Type.Integer({ minimum: 100, maximum: 86400000, default: 10000, description: 'Poll period.' }),
    timeout_ms: Type.Integer({
      minimum: 100,
      maximum: 300000,
      default: 5000,
      description: 'A request not answered within this is a timeout.',
    }),
    max_silence_ms: Type.Integer({
      minimum: 1000,
      maximum: 86400000,
      default: 300000,
      description: 'observe: no notification for this long → the registration is dropped and made again.',
    }),
    value_name: Type.String({
      pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$',
      default: 'value',
      description: 'Value name for a payload that is a bare number or boolean (text/plain).',
    }),
    unit: Type.Optional(Type.String({ maxLength: 32, description: 'Unit of value_name, for bare-number payloads.' })),
    psk: Type.Optional(
      Type.Object(
        {
          identity: Type.String({ minLength: 1, maxLength: 128, description: 'DTLS-PSK identity.' }),
          key: Secret('DTLS pre-shared key (use !env or !file).'),
        },
        { additionalProperties: false, description: 'DTLS-PSK credentials for coaps:// URLs.' },
      ),
    ),
    backoff: Backoff,
  },
  { additionalProperties: false },
);
export type CoapDriverConfig = Static<typeof CoapDriverConfigSchema>;
