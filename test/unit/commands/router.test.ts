import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandRouter, type CommandHandler } from '../../../src/commands/router.js';
import { createLogger } from '../../../src/log/logger.js';
import { MgmtRegistry } from '../../../src/mgmt/registry.js';
import type { PublishOutcome, PublishRequest, Publisher } from '../../../src/publisher/types.js';

const log = createLogger({ level: 'silent' });

/** A Publisher that records what it was asked to send (the router's only output). */
class Recorder implements Publisher {
  readonly sent: PublishRequest[] = [];
  async publish(req: PublishRequest): Promise<PublishOutcome> {
    this.sent.push(req);
    return { local: true, uplink: false };
  }
}

function setup() {
  const pub = new Recorder();
  const router = new CommandRouter({ log });
  const seen: unknown[] = [];
  const h: CommandHandler = {
    name: 'h',
    ownsDevice: (id) => id.startsWith('dev'),
    handleCommand: async (_id, body) => {
      seen.push(body);
      return { ok: true };
    },
  };
  router.add(h);
  let handler: ((topic: string, payload: Buffer) => void) | undefined;
  router.attach({ subscribe: (filter, fn) => (assert.equal(filter, 'commands/+'), (handler = fn)) }, pub);
  assert.ok(handler);
  return { pub, router, seen };
}

test('a command for an owned device is handled and answered locally only', async () => {
  const { pub, router, seen } = setup();
  await router.route('commands/dev-1', Buffer.from('{"set":1}'));
  assert.deepEqual(seen, [{ set: 1 }]);
  assert.equal(pub.sent.length, 1);
  assert.equal(pub.sent[0]!.topic, 'devices/dev-1/command_result');
  assert.equal(pub.sent[0]!.uplink, false);
  assert.deepEqual(JSON.parse(String(pub.sent[0]!.payload)), { ok: true });
});

test('hostile commands: bad ids are ignored, malformed or oversized payloads refused, prototype keys inert', async () => {
  const { pub, router, seen } = setup();
  for (const topic of ['commands/', 'commands/dev 1', 'commands/dev/../x', `commands/dev${'x'.repeat(100)}`]) {
    await router.route(topic, Buffer.from('{"set":1}'));
  }
  assert.equal(pub.sent.length, 0, 'ids outside the device-id charset/length are not routed');
  await router.route('commands/dev-1', Buffer.from('{"set":'));
  await router.route('commands/dev-1', Buffer.alloc(256 * 1024, 0xff));
  assert.equal(pub.sent.length, 2);
  for (const s of pub.sent)
    assert.deepEqual(JSON.parse(String(s.payload)), { ok: false, error: 'command payload is not JSON' });
  assert.equal(router.counters.invalid, 2);
  await router.route('commands/dev-1', Buffer.from('{"__proto__":{"polluted":1}}'));
  assert.equal(({} as { polluted?: number }).polluted, undefined);
  assert.equal(seen.length, 1);
  // Not owned by any handler: left alone (the device itself may be subscribed).
  await router.route('commands/other', Buffer.from('{}'));
  assert.equal(pub.sent.length, 3);
});

test('mgmt registry: typed entries, checked view names, no double registration', () => {
  const r = new MgmtRegistry();
  r.add({ resources: { plugins: () => ({ plugins: [] }) }, views: { alerts: { get: () => ({ n: 0 }) } } });
  assert.deepEqual(r.get('plugins')?.(), { plugins: [] });
  assert.equal(r.get('queues'), undefined);
  assert.deepEqual(
    r.views().map(([n]) => n),
    ['alerts'],
  );
  assert.throws(() => r.register('plugins', () => ({})), /registered twice/);
  assert.throws(() => r.view('alerts', { get: () => ({}) }), /registered twice/);
  for (const bad of ['', 'A', '../x', 'a/b', 'x'.repeat(33), 'a b', '%2e'])
    assert.throws(() => r.view(bad, { get: () => ({}) }), /not allowed/);
});
