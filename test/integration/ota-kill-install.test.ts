import { CASES, killMatrix } from './ota-kill-matrix.js';

// kill -9 at each OTA state up to the link swap (checking … activate:previous-linked): the old
// release comes back committed, and the update applied again goes through (ota-kill-matrix.ts).
killMatrix(CASES.filter((c) => c.in === 'old' && c.expect === 'old'));
