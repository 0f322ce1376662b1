// @ts-check
/**
 * overheat-guard: above `cool_above` POST a cooling command to a CoAP controller; above
 * `shutdown_above` send `shutdown` on commands/{deviceId}. Each threshold re-arms only once the
 * temperature fell `hysteresis` below it, so a value hovering at the threshold does not flap.
 */
import coap from 'coap';
import { definePlugin } from 'edge-gateway/plugin';

/**
 * POST a JSON body to a CoAP URL (RFC 7252 §5.8.2); resolves with the response code.
 * @param {string} url
 * @param {object} body
 * @param {number} timeoutMs
 * @returns {Promise<string>}
 */
function post(url, body, timeoutMs) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = coap.request({
      hostname: u.hostname.replace(/^\[|\]$/g, ''),
      port: Number(u.port || 5683),
      pathname: u.pathname,
      method: 'POST',
      confirmable: true,
      options: { 'Content-Format': 'application/json' },
    });
    const timer = setTimeout(() => reject(new Error(`no answer from ${url} within ${timeoutMs} ms`)), timeoutMs);
    req.on('response', (res) => {
      clearTimeout(timer);
      resolve(res.code);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(JSON.stringify(body));
  });
}

export default definePlugin({
  name: 'overheat-guard',
  version: '1.0.0',
  apiVersion: '^1.0.0',
  // Commands any device it watches (`devices` in its config narrows what it watches).
  capabilities: { commands: ['*'] },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['controller'],
    properties: {
      controller: { type: 'string', pattern: '^coap://' },
      value: { type: 'string', default: 'temperature' },
      devices: { type: 'string', default: '*' },
      cool_above: { type: 'number', default: 75 },
      shutdown_above: { type: 'number', default: 85 },
      hysteresis: { type: 'number', minimum: 0, default: 3 },
      timeout_ms: { type: 'integer', minimum: 100, default: 2000 },
    },
  },
  setup(ctx) {
    const c =
      /** @type {{controller: string, value: string, devices: string, cool_above: number, shutdown_above: number, hysteresis: number, timeout_ms: number}} */ (
        /** @type {unknown} */ (ctx.config)
      );
    const match = new RegExp(
      `^${c.devices
        .split('*')
        .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
    /** @type {Map<string, {cooling: boolean, shut: boolean}>} */
    const state = new Map();
    const sent = ctx.metrics.counter('actions_total', 'cooling and shutdown actions', ['action']);
    ctx.readings.observe(async (r) => {
      const t = r.values[c.value];
      if (typeof t !== 'number' || !match.test(r.deviceId)) return;
      let s = state.get(r.deviceId);
      if (!s) state.set(r.deviceId, (s = { cooling: false, shut: false }));
      if (!s.shut && t > c.shutdown_above) {
        s.shut = true;
        sent.inc({ action: 'shutdown' });
        ctx.log.warn({ deviceId: r.deviceId, temperature: t }, 'shutdown');
        await ctx.command(r.deviceId, { command: 'shutdown', reason: `temperature ${t} above ${c.shutdown_above}` });
      } else if (s.shut && t < c.shutdown_above - c.hysteresis) s.shut = false;
      if (!s.cooling && t > c.cool_above) {
        s.cooling = true;
        sent.inc({ action: 'cool' });
        await post(c.controller, { device: r.deviceId, action: 'cool', temperature: t }, c.timeout_ms);
      } else if (s.cooling && t < c.cool_above - c.hysteresis) {
        s.cooling = false;
        sent.inc({ action: 'stop' });
        await post(c.controller, { device: r.deviceId, action: 'stop', temperature: t }, c.timeout_ms);
      }
    });
  },
});
