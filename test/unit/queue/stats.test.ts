import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClassCounters } from '../../../src/queue/stats.js';

test('class counters: stored, delivered and dropped add up; the view reports the oldest age and the averaged rate', () => {
  const c = new ClassCounters();
  c.stored(3, 30, 900);
  c.removed(1, 10, 300);
  c.sent(10, 400);
  c.dropped.ttl += 5;
  c.tick();
  const v = c.view(1000, 4000);
  assert.equal(v.depth, 2);
  assert.equal(v.readings, 20);
  assert.equal(v.bytes, 600);
  assert.equal(v.oldestAgeS, 3);
  assert.equal(v.sentMessages, 1);
  assert.equal(v.sentReadings, 10);
  assert.equal(v.sentBytes, 400);
  assert.equal(v.sendRateBps, 40); // 0.1 of the last second's 400 B
  assert.equal(v.dropped.ttl, 5);
  // the view is a copy: changing it does not change the counters
  v.dropped.ttl = 99;
  assert.equal(c.view(undefined, 0).dropped.ttl, 5);
  // empty class: age 0 whatever the clock says
  c.removed(2, 20, 600);
  assert.equal(c.view(0, 1e9).oldestAgeS, 0);
});
