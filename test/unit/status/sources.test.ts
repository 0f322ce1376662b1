import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statusSourcesFrom } from '../../../src/status/sources.js';

const base = {
  health: () => ({ ok: true, loopLagMs: 0, loopP99Ms: 0, services: {} }),
  version: '1.2.3',
  uptimeMs: () => 5000,
  devices: { list: () => [] },
  latest: { get: () => undefined },
};

test('statusSourcesFrom: parts not built stay absent (the page says "not enabled"); the uplink is "disabled" without a queue', () => {
  const s = statusSourcesFrom(base);
  assert.equal(s.queues, undefined);
  assert.equal(s.history, undefined);
  assert.equal(s.deadletters, undefined);
  assert.equal(s.alerts, undefined);
  assert.equal(s.ota, undefined);
  assert.deepEqual(s.uplink(), { state: 'disabled', url: null, inflight: 0, lastError: null });
});

test("statusSourcesFrom: the uplink's last error comes from its health detail; history and dead letters are passed through per device", () => {
  const calls: unknown[] = [];
  const s = statusSourcesFrom({
    ...base,
    queue: {
      snapshot: () => {
        throw new Error('not called here');
      },
      uplinkState: () => ({ state: 'offline', url: 'mqtt://cloud:1883', inflight: 2 }),
      uplink: { health: () => ({ detail: { lastError: 'connect ECONNREFUSED' } }) },
    },
    history: { query: (id, q) => (calls.push(['h', id, q]), []) },
    deadletters: { list: (q) => (calls.push(['d', q]), []) },
  });
  assert.deepEqual(s.uplink(), {
    state: 'offline',
    url: 'mqtt://cloud:1883',
    inflight: 2,
    lastError: 'connect ECONNREFUSED',
  });
  s.history!('dev-1', { limit: 5 });
  s.deadletters!('dev-1', 20);
  assert.deepEqual(calls, [
    ['h', 'dev-1', { limit: 5 }],
    ['d', { deviceId: 'dev-1', limit: 20 }],
  ]);
});
