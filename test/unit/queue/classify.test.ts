import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Classifier, topicMatches } from '../../../src/queue/classify.js';
import { QueueConfigSchema } from '../../../src/queue/config.js';
import { parseConfig } from '../../../src/config/load.js';

const defaults = parseConfig('version: 1\n').queue;

test('topic filters follow MQTT wildcard rules', () => {
  assert.ok(topicMatches('alerts/#', 'alerts/press-1'));
  assert.ok(topicMatches('alerts/#', 'alerts'));
  assert.ok(topicMatches('sensors/+/data', 'sensors/a/data'));
  assert.ok(!topicMatches('sensors/+/data', 'sensors/a/b/data'));
  assert.ok(!topicMatches('sensors/+', 'sensors/a/data'));
  assert.ok(QueueConfigSchema);
});

test('default rules: alerts and defective inspections CRITICAL, status HIGH, history LOW, the rest MEDIUM', () => {
  const c = new Classifier(defaults);
  assert.equal(c.classify('alerts/press-07', 'alert').cls, 0);
  assert.equal(c.classify('inspection/cam1/result', 'vision', ['defective']).cls, 0);
  assert.equal(c.classify('inspection/cam1/result', 'vision', ['good']).cls, 1);
  assert.equal(c.classify('devices/d1/status', 'mqtt').cls, 1);
  assert.equal(c.classify('history/d1', 'mqtt').cls, 3);
  assert.equal(c.classify('sensors/d1/data', 'mqtt').cls, 2);
});

test('class TTLs apply unless a rule or the producer overrides them', () => {
  const cfg = parseConfig(
    [
      'version: 1',
      'queue:',
      '  rules:',
      '    - { topic: "sensors/+/data", source: [serial], class: LOW, ttl_s: 60 }',
    ].join('\n'),
  ).queue;
  const c = new Classifier(cfg);
  assert.deepEqual(c.classify('sensors/d/data', 'serial'), { cls: 3, ttlMs: 60000 });
  assert.deepEqual(c.classify('sensors/d/data', 'mqtt'), { cls: 2, ttlMs: 86400000 });
  assert.deepEqual(c.classify('sensors/d/data', 'mqtt', undefined, 'CRITICAL'), { cls: 0, ttlMs: 0 });
  assert.deepEqual(c.classify('sensors/d/data', 'mqtt', undefined, undefined, 5), { cls: 2, ttlMs: 5000 });
});

test('a rule with an unknown class is refused by the config schema', () => {
  assert.throws(
    () => parseConfig('version: 1\nqueue:\n  rules:\n    - { topic: "a/#", class: URGENT }\n'),
    /queue\.rules\[0\]\.class/,
  );
});
