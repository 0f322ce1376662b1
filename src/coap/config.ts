import { Type, type Static } from '@sinclair/typebox';
import { AllowSources, section, Port, Host } from '../config/sections.js';

export const CoapConfigSchema = section(
  {
    enabled: Type.Boolean({ default: true, description: 'Run the CoAP server (device ingest and /mgmt).' }),
    host: Host(
      '127.0.0.1',
      'Address the CoAP server binds to: 127.0.0.1 (default) keeps it on this machine; :: is every IPv4 and IPv6 address.',
    ),
    port: Port(5683, 'CoAP UDP port (0 picks a free port, for tests).'),
    max_payload_bytes: Type.Integer({
      minimum: 64,
      maximum: 1048576,
      default: 65536,
      description: 'Largest request body (one datagram or a Block1 transfer); larger gets 4.13 with Size1.',
    }),
    rate_limit: section(
      {
        requests_per_s: Type.Number({
          minimum: 1,
          default: 500,
          description: 'Sustained requests per second per source address.',
        }),
        burst: Type.Integer({ minimum: 1, default: 1000, description: 'Requests a quiet source may send at once.' }),
      },
      'Per-source request limit; beyond it CON requests get 5.03 and NON requests are dropped (counted).',
    ),
    allow_sources: AllowSources(
      'Source addresses (CIDR) that may use the CoAP server at all (ingest, /sensors, discovery); datagrams from others are dropped unanswered and counted. Default loopback only; [] admits nobody.',
    ),
    max_observers: Type.Integer({
      minimum: 0,
      default: 1000,
      description: 'Observe registrations held at once (RFC 7641); beyond it GET answers without registering.',
    }),
  },
  'CoAP server (RFC 7252): device ingest at /sensors, observe, management at /mgmt.',
);
export type CoapConfig = Static<typeof CoapConfigSchema>;
