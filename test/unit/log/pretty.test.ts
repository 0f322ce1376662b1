import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prettyLine } from '../../../src/log/pretty.js';

test('a JSON log line becomes one readable line with time, level, module, message and fields', () => {
  const line = JSON.stringify({
    level: 'info',
    time: '2026-11-22T07:32:06.116Z',
    svc: 'edge-gateway',
    mod: 'coap',
    host: '::',
    port: 5683,
    detail: { a: 1 },
    msg: 'CoAP listening',
  });
  assert.equal(prettyLine(line), '07:32:06.116 INFO  [coap] CoAP listening host=:: port=5683 detail={"a":1}');
});

test('lines that are not JSON pass through unchanged', () => {
  assert.equal(prettyLine('not json {'), 'not json {');
  assert.equal(prettyLine(''), '');
});
