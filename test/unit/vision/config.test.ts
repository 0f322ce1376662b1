import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { parse } from 'yaml';
import { VisionConfigSchema } from '../../../src/vision/config.js';

const errors = (v: unknown) =>
  [...Value.Errors(VisionConfigSchema, Value.Default(VisionConfigSchema, structuredClone(v)))].map(
    (e) => `${e.path}: ${e.message}`,
  );

test('vision section: {} is valid and disabled; the demo example validates', () => {
  assert.deepEqual(errors({}), []);
  const d = Value.Default(VisionConfigSchema, {}) as { enabled: boolean; providers: string[]; fail_safe: string };
  assert.equal(d.enabled, false);
  assert.deepEqual(d.providers, ['cpu']);
  assert.equal(d.fail_safe, 'reject');
  const demo = parse(readFileSync('config/examples/vision-demo.yaml', 'utf8')) as { vision: unknown };
  assert.deepEqual(errors(demo.vision), []);
});

test('vision section: typos, unknown providers and hostile values are errors', () => {
  assert.notDeepEqual(errors({ enabeld: true }), []);
  assert.notDeepEqual(errors({ providers: ['opencl'] }), []);
  assert.notDeepEqual(errors({ providers: [] }), []);
  assert.notDeepEqual(errors({ cameras: [{ id: '../etc', kind: 'directory', path: '/x' }] }), []);
  assert.notDeepEqual(errors({ cameras: [{ id: 'c', kind: 'http', url: 'file:///etc/passwd' }] }), []);
  assert.notDeepEqual(errors({ model: { path: 'm.onnx', fit: 'stretch' } }), []);
  assert.notDeepEqual(errors({ deadline_ms: 0 }), []);
  assert.notDeepEqual(errors({ model: { path: 'm.onnx', mean: [1, 2, 3, 4, 5] } }), []);
});
