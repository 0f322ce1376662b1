import { CASES, killMatrix } from './ota-kill-matrix.js';

// kill -9 while checking, downloading (mid-file), verified, and mid-unpack: the old release comes back
// committed, and the update applied again goes through — a cut download resumes (ota-kill-matrix.ts).
const DOWNLOAD = ['checking', 'downloading', 'downloaded', 'unpacking'];
killMatrix(CASES.filter((c) => DOWNLOAD.includes(c.point)));
