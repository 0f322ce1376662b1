import { COAP_CONTENT_FORMAT, decode } from '../codec/index.js';
import type { GatewayContext } from '../context.js';
import type { Service } from '../lifecycle/service.js';
import { ManagementApi } from '../mgmt/api.js';
import type { BinaryDecoder } from './payload.js';
import { sensorResources } from './sensors.js';
import { CoapServer } from './server.js';

export { CoapServer } from './server.js';
export type { BinaryDecoder } from './payload.js';

export interface CoapWiring {
  /** In start order: management routes first, then the listener. */
  services: Service[];
  server: CoapServer;
  /** Undefined when mgmt.enabled is false. Fill providers with `mgmt.provide('queues', fn)`. */
  mgmt: ManagementApi | undefined;
}

/** Builds the CoAP server with /sensors and /mgmt from the context (called by buildServices). */
/** The binary codec (src/codec) at its experimental-range Content-Format (docs/codec.md). */
export const CODEC_DECODER: BinaryDecoder = {
  contentFormat: COAP_CONTENT_FORMAT,
  decode: (buf) => decode(buf, { source: 'coap' }),
};

export function buildCoap(ctx: GatewayContext, binary: BinaryDecoder = CODEC_DECODER): CoapWiring {
  const log = ctx.log.child({ mod: 'coap' });
  const server = new CoapServer({ config: ctx.config.coap, log, registry: ctx.metrics });
  const sensors = sensorResources({ pipeline: ctx.pipeline, latest: ctx.latest, devices: ctx.devices, log, binary });
  for (const r of sensors.resources) server.add(r);
  const services: Service[] = [];
  let mgmt: ManagementApi | undefined;
  if (ctx.config.mgmt.enabled) {
    mgmt = new ManagementApi({ ctx, coap: server });
    services.push(mgmt);
  }
  server.onStop(() => sensors.close());
  services.push(server);
  return { services, server, mgmt };
}
