import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CapabilityGuard, deviceMatches, isPublishableTopic, topicMatches } from '../../../src/plugins/capabilities.js';
import { checkDefinition, validatePluginConfig } from '../../../src/plugins/load.js';

test('publish patterns follow MQTT filter matching [MQTT-4.7.1]', () => {
  assert.ok(topicMatches('reports/+/window', 'reports/kiln-1/window'));
  assert.ok(!topicMatches('reports/+/window', 'reports/a/b/window'));
  assert.ok(topicMatches('site/#', 'site/a/b'));
  assert.ok(topicMatches('site/#', 'site'));
  assert.ok(!topicMatches('site/+', 'site'));
  assert.ok(!topicMatches('a/b', 'a/b/c'));
});

test('device globs and publishable topics refuse hostile values', () => {
  assert.ok(deviceMatches('kiln-*', 'kiln-7'));
  assert.ok(!deviceMatches('kiln-*', 'press-1'));
  assert.ok(deviceMatches('*', 'anything'));
  // Regex metacharacters in a glob are literal.
  assert.ok(!deviceMatches('a.b', 'axb'));
  assert.ok(!deviceMatches('(a+)+$', 'aaaaaaaaaaaaaaaaaaaaaaaa!'));
  for (const t of ['', '$SYS/x', '/lead', 'a/+/b', 'a/#', 'nul\u0000', 'x'.repeat(257)])
    assert.ok(!isPublishableTopic(t), t);
});

test('the guard refuses undeclared capabilities with EGW_PLUGIN_CAPABILITY', () => {
  const g = new CapabilityGuard('p', { publish: ['ok/+'], commands: ['dev-*'] });
  g.publish('ok/1');
  g.command('dev-3');
  for (const f of [
    () => g.publish('commands/dev-3'),
    () => g.command('other'),
    () => g.coap(),
    () => g.driverType('x-a'),
    () => g.transform(),
  ])
    assert.throws(f, (e: { code?: string }) => e.code === 'EGW_PLUGIN_CAPABILITY');
});

test('definitions: apiVersion ranges, names and shapes are checked; configs validated and frozen', () => {
  const base = { name: 'p', apiVersion: '^1.0.0', setup: () => undefined };
  assert.equal(checkDefinition(base, 'p').version, '0.0.0');
  assert.throws(() => checkDefinition({ ...base, apiVersion: '^2.0.0' }, 'p'), /built for plugin API \^2\.0\.0/);
  assert.throws(() => checkDefinition({ ...base, apiVersion: 'latest' }, 'p'), /not a semver range/);
  assert.throws(() => checkDefinition({ ...base, name: 'q' }, 'p'), /loads a plugin named q/);
  for (const bad of [null, 42, 'p', {}, { ...base, setup: 'no' }, { ...base, capabilities: 5 }])
    assert.throws(
      () => checkDefinition(bad, 'p'),
      (e: { code?: string }) => e.code === 'EGW_PLUGIN_LOAD',
    );
  const schema = { type: 'object', properties: { n: { type: 'number', default: 3 } }, additionalProperties: false };
  const cfg = validatePluginConfig('p', schema, {}) as { n: number };
  assert.equal(cfg.n, 3);
  assert.ok(Object.isFrozen(cfg));
  assert.throws(() => validatePluginConfig('p', schema, { n: 'x', extra: 1 }), /plugins\.p\.config\.n: must be number/);
});
