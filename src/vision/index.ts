import type { CapabilityModule } from '../capability/types.js';
import { needSeam } from '../capability/needs.js';
import { VisionService } from './service.js';

export { VisionService } from './service.js';

/**
 * Camera inspection (docs/vision.md): frames → sharp → ONNX Runtime in a worker → verdict →
 * reject action; results through the publisher (defective CRITICAL). After the broker (MQTT
 * camera frames) and the publisher in the module list.
 */
export const visionModule: CapabilityModule = {
  name: 'vision',
  enabled: (config) => config.vision.enabled,
  build(ctx) {
    const broker = ctx.provided.broker;
    const vision = new VisionService({
      config: ctx.config.vision,
      log: ctx.log.child({ mod: 'vision' }),
      registry: ctx.metrics,
      publisher: needSeam(ctx.provided.publisher, 'publisher', 'vision'),
      ...(broker
        ? {
            subscribe: (filter, handler) => broker.subscribe(filter, handler),
          }
        : {}),
    });
    return {
      services: [vision],
      provides: { inspection: vision },
      mgmt: { resources: { inspection: () => vision.view() } },
    };
  },
};
