import type { HistoryStore } from '../history/store.js';
import { MAX_HISTORY_LIMIT } from '../history/store.js';
import { isValidDeviceId } from '../pipeline/reading.js';
import { json, text, type Resource } from './router.js';

/**
 * GET /sensors/{deviceId}/history?since=MS&limit=N (docs/coap.md): the device's kept readings,
 * oldest first, JSON. `since` is wall-clock epoch ms; `limit` 1..1000 (default 100, the newest N).
 */
export function historyResource(history: HistoryStore): Resource {
  return {
    path: '/sensors/{deviceId}/history',
    rt: 'edge.history',
    ct: [50],
    hidden: true,
    methods: {
      GET: (req, p) => {
        const id = p['deviceId'] ?? '';
        if (!isValidDeviceId(id)) return text('4.00', 'device id not allowed: letters, digits, _ . : - (1-64)');
        const q: { since?: number; limit?: number } = {};
        for (const [k, v] of Object.entries(req.query)) {
          if (k !== 'since' && k !== 'limit')
            return text('4.02', `unknown query option ${k.slice(0, 32)} (since, limit)`);
          if (!/^\d{1,16}$/.test(v)) return text('4.00', `${k} must be a non-negative integer`);
          const n = Number(v);
          if (k === 'limit' && (n < 1 || n > MAX_HISTORY_LIMIT))
            return text('4.00', `limit must be 1..${MAX_HISTORY_LIMIT}`);
          q[k] = n;
        }
        const rows = history.query(id, q);
        if (rows.length === 0 && q.since === undefined) return text('4.04', `no history for ${id}`);
        return json('2.05', { deviceId: id, readings: rows });
      },
    },
  };
}
