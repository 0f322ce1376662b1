import { CASES, killMatrix } from './ota-kill-matrix.js';

// kill -9 after unpacking and during activation up to the link swap (staged, activate:trial-written,
// activate:previous-linked): the old release comes back committed, and the update applied again goes
// through (ota-kill-matrix.ts). ota-kill-download and ota-kill-switch hold the other states.
const INSTALL = ['staged', 'activate:trial-written', 'activate:previous-linked'];
killMatrix(CASES.filter((c) => INSTALL.includes(c.point)));
