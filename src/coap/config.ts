import { Type, type Static } from '@sinclair/typebox';
import { section, Port, Host } from '../config/sections.js';

export const CoapConfigSchema = section(
  {
    enabled: Type.Boolean({ default: true }),
    host: Host('::', 'Address the CoAP server binds to (:: is IPv4 and IPv6).'),
    port: Port(5683, 'CoAP UDP port.'),
  },
  'CoAP server.',
);
export type CoapConfig = Static<typeof CoapConfigSchema>;
