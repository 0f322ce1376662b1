import type { CapabilityModule } from '../capability/types.js';
import { needDb } from '../capability/needs.js';
import { COAP_CONTENT_FORMAT, decode } from '../codec/index.js';
import type { Service } from '../lifecycle/service.js';
import { ManagementApi } from '../mgmt/api.js';
import type { BinaryDecoder } from './payload.js';
import type { Resource } from './router.js';
import { historyResource } from './history.js';
import { sensorResources } from './sensors.js';
import { CoapServer } from './server.js';

export { CoapServer } from './server.js';
export type { BinaryDecoder } from './payload.js';

/** The binary codec (src/codec) at its experimental-range Content-Format (docs/codec.md). */
export const CODEC_DECODER: BinaryDecoder = {
  contentFormat: COAP_CONTENT_FORMAT,
  decode: (buf) => decode(buf, { source: 'coap' }),
};

/**
 * The CoAP server with /sensors (ingest, latest, observe) and, when mgmt.enabled, /mgmt. The
 * management API reads the registry the root fills from every module (ctx.mgmt), so resources of
 * modules built later are served too. Owns tables: the management audit log.
 */
export const coapModule: CapabilityModule = {
  name: 'coap',
  ownsTables: true,
  enabled: (config) => config.coap.enabled,
  build(ctx, db) {
    const log = ctx.log.child({ mod: 'coap' });
    const server = new CoapServer({ config: ctx.config.coap, log, registry: ctx.metrics });
    const sensors = sensorResources({
      pipeline: ctx.pipeline,
      latest: ctx.latest,
      devices: ctx.devices,
      log,
      binary: CODEC_DECODER,
    });
    for (const r of sensors.resources) server.add(r);
    if (ctx.provided.history) server.add(historyResource(ctx.provided.history));
    const services: Service[] = [];
    let mgmtTokens: (() => readonly string[]) | undefined;
    if (ctx.config.mgmt.enabled) {
      // In start order: management routes first, then the listener.
      const api = new ManagementApi({
        ctx: { ...ctx, db: needDb(db, 'coap') },
        coap: server,
        registry: ctx.mgmt,
        check: ctx.checkConfig,
      });
      services.push(api);
      // Read at each use: a config apply may replace the tokens.
      mgmtTokens = () => [api.tokens.read, api.tokens.admin];
    }
    server.onStop(() => sensors.close());
    services.push(server);
    const coapResources = (r: Resource) => server.add(r);
    return { services, provides: { coapResources, ...(mgmtTokens ? { mgmtTokens } : {}) } };
  },
};
