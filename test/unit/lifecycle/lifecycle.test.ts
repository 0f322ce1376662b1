import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Lifecycle } from '../../../src/lifecycle/lifecycle.js';
import { LoopMonitor } from '../../../src/lifecycle/loop-monitor.js';
import type { Service, ServiceHealth } from '../../../src/lifecycle/service.js';
import { GatewayError } from '../../../src/errors.js';

const log = pino({ level: 'silent' });

/** A service that records what happened to it in a shared journal. */
function svc(
  name: string,
  journal: string[],
  opts: { failStart?: boolean; stopMs?: number; failStop?: boolean } = {},
): Service {
  let state = 'stopped';
  return {
    name,
    async start() {
      journal.push(`start ${name}`);
      if (opts.failStart) throw new Error(`${name} cannot listen`);
      state = 'listening';
    },
    async stop() {
      journal.push(`stop ${name}`);
      if (opts.stopMs) await new Promise((r) => setTimeout(r, opts.stopMs));
      if (opts.failStop) throw new Error('stop failed');
      state = 'stopped';
    },
    health(): ServiceHealth {
      return { ok: state === 'listening', state };
    },
  };
}

test('services start in the given order and stop in reverse', async () => {
  const j: string[] = [];
  const lc = new Lifecycle([svc('outbox', j), svc('broker', j), svc('metrics', j)], log);
  await lc.start();
  assert.deepEqual(lc.health(), {
    outbox: { ok: true, state: 'listening' },
    broker: { ok: true, state: 'listening' },
    metrics: { ok: true, state: 'listening' },
  });
  await lc.stop(1000);
  assert.deepEqual(j, ['start outbox', 'start broker', 'start metrics', 'stop metrics', 'stop broker', 'stop outbox']);
  assert.equal(lc.health()['broker']!.state, 'stopped');
});

test('a failed start stops what already started (reverse) and throws EGW_SERVICE_START naming the service', async () => {
  const j: string[] = [];
  const lc = new Lifecycle([svc('outbox', j), svc('broker', j, { failStart: true }), svc('metrics', j)], log);
  await assert.rejects(lc.start(), (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, 'EGW_SERVICE_START');
    assert.match(err.message, /service broker failed to start: broker cannot listen/);
    return true;
  });
  // metrics never started; outbox was stopped; the failed broker is not "stopped" twice.
  assert.deepEqual(j, ['start outbox', 'start broker', 'stop outbox']);
  assert.equal(lc.health()['metrics']!.ok, false);
});

test('stop is bounded: a hanging service does not hold the others, and stop is idempotent', async () => {
  const j: string[] = [];
  const lc = new Lifecycle([svc('a', j), svc('hang', j, { stopMs: 5000 }), svc('c', j, { failStop: true })], log);
  await lc.start();
  const t0 = performance.now();
  const first = lc.stop(200);
  const second = lc.stop(200);
  assert.equal(first, second, 'a second stop joins the first');
  await first;
  const took = performance.now() - t0;
  assert.ok(took < 2000, `stop took ${took} ms with a 200 ms bound`);
  assert.deepEqual(j.slice(3), ['stop c', 'stop hang', 'stop a']);
});

test('the loop monitor reports a blocked loop as unresponsive while the block lasts', async () => {
  const m = new LoopMonitor(150);
  m.start();
  try {
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(m.responsive(), true);
    const end = performance.now() + 400;
    let during = true;
    while (performance.now() < end) {
      if (performance.now() > end - 50) during = m.responsive();
    }
    assert.equal(during, false, 'lag counted while the loop is blocked');
    assert.ok(m.lagMs() > 150);
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(m.responsive(), true, 'responsive again after the block');
    assert.ok(m.p99Ms() >= 0);
  } finally {
    m.stop();
  }
});
