import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError, parseConfig } from '../../../src/config/load.js';

/** The section through the real loader (ajv with defaults), as the gateway reads it. */
const load = (v: unknown) => parseConfig(JSON.stringify({ version: 1, vision: v }), 'test.yaml', {}).vision;
const errors = (v: unknown) => {
  try {
    load(v);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
};

test('vision section: {} is valid and disabled; the demo example validates', () => {
  assert.deepEqual(errors({}), []);
  const d = load({});
  assert.equal(d.enabled, false);
  assert.deepEqual(d.providers, ['cpu']);
  assert.equal(d.fail_safe, 'reject');
  const demo = parse(readFileSync('config/examples/vision-demo.yaml', 'utf8')) as { vision: unknown };
  assert.deepEqual(errors(demo.vision), []);
  // Defaults inside the camera and reject-action branches apply (if/then, not anyOf).
  const cams = load({
    cameras: [{ id: 'c', kind: 'directory', path: '/x' }],
    reject: [{ kind: 'serial', port: '/dev/ttyS0' }],
  });
  assert.deepEqual(cams.cameras[0], { id: 'c', kind: 'directory', path: '/x', settle_ms: 200, delete_after: true });
  assert.deepEqual(cams.reject[0], { kind: 'serial', port: '/dev/ttyS0', baud: 9600, line: 'REJECT {partId}' });
  assert.match(errors({ cameras: [{ id: 'c', kind: 'webcam' }] }).join(), /vision\.cameras\[0\]\.kind/);
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
