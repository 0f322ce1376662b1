// @ts-check
/**
 * window-report: per device and numeric value, count/min/max/mean over a tumbling window of
 * `interval_s`, published on reports/{deviceId}/window at LOW priority (local broker and cloud).
 */
import { definePlugin } from 'edge-gateway/plugin';

export default definePlugin({
  name: 'window-report',
  version: '1.0.0',
  apiVersion: '^1.0.0',
  capabilities: { publish: ['reports/+/window'] },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      interval_s: { type: 'number', minimum: 0.1, default: 600 },
      max_devices: { type: 'integer', minimum: 1, default: 1000 },
    },
  },
  setup(ctx) {
    const c = /** @type {{interval_s: number, max_devices: number}} */ (/** @type {unknown} */ (ctx.config));
    /** @type {Map<string, Map<string, {n: number, min: number, max: number, sum: number}>>} */
    let windows = new Map();
    let start = Date.now();
    ctx.readings.observe((r) => {
      let w = windows.get(r.deviceId);
      if (!w) {
        if (windows.size >= c.max_devices) return; // bounded: extra devices wait for the next window
        windows.set(r.deviceId, (w = new Map()));
      }
      for (const [name, v] of Object.entries(r.values)) {
        if (typeof v !== 'number') continue;
        const s = w.get(name);
        if (!s) w.set(name, { n: 1, min: v, max: v, sum: v });
        else {
          s.n++;
          s.sum += v;
          if (v < s.min) s.min = v;
          if (v > s.max) s.max = v;
        }
      }
    });
    ctx.setInterval(async () => {
      const done = windows;
      const from = start;
      windows = new Map();
      start = Date.now();
      for (const [deviceId, w] of done) {
        /** @type {Record<string, {count: number, min: number, max: number, mean: number}>} */
        const values = {};
        for (const [name, s] of w) values[name] = { count: s.n, min: s.min, max: s.max, mean: s.sum / s.n };
        await ctx.publish(`reports/${deviceId}/window`, { deviceId, from, to: start, values }, { priority: 'LOW' });
      }
    }, c.interval_s * 1000);
  },
});
