import { test } from 'node:test';
import { CASES, allPointsCovered, killMatrix } from './ota-kill-matrix.js';

// kill -9 at each OTA state from the link swap on (activate:current-linked, trial, committing,
// rolling back): the new release on trial or committed, or the old one rolled back (ota-kill-matrix.ts).
test('every fault point is in the matrix', () => allPointsCovered());
killMatrix(CASES.filter((c) => !(c.in === 'old' && c.expect === 'old')));
