// @ts-check
/**
 * tag-mirror: a driver type added by a plugin. `type: x-tag-mirror` entries re-publish one value
 * of another device (e.g. a PLC tag read by a Modbus driver) as a reading of their own device id,
 * scaled: `target = value * scale + offset`. Shows how a plugin adds a driver type.
 */
import { definePlugin } from 'edge-gateway/plugin';

export default definePlugin({
  name: 'tag-mirror',
  version: '1.0.0',
  apiVersion: '^1.0.0',
  capabilities: { driverTypes: ['x-tag-mirror'] },
  setup(ctx) {
    /** @type {Set<(r: import('edge-gateway/plugin').PluginReading) => void>} */
    const listeners = new Set();
    ctx.readings.observe((r) => {
      for (const l of listeners) l(r);
    });
    ctx.driverType({
      type: 'x-tag-mirror',
      optionsSchema: {
        type: 'object',
        additionalProperties: false,
        required: ['source', 'value'],
        properties: {
          source: { type: 'string' },
          value: { type: 'string' },
          as: { type: 'string' },
          scale: { type: 'number', default: 1 },
          offset: { type: 'number', default: 0 },
        },
      },
      create(entry, dctx) {
        const o = /** @type {{source: string, value: string, as?: string, scale: number, offset: number}} */ (
          entry.options
        );
        /** @param {import('edge-gateway/plugin').PluginReading} r */
        const onReading = (r) => {
          const v = r.values[o.value];
          if (r.deviceId !== o.source || typeof v !== 'number') return;
          dctx.emit([{ values: { [o.as ?? o.value]: v * o.scale + o.offset } }]);
        };
        return {
          async start() {
            listeners.add(onReading);
            dctx.setConnected(true);
          },
          async stop() {
            listeners.delete(onReading);
          },
        };
      },
    });
  },
});
