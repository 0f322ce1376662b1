#!/usr/bin/env node
// `npm start` on a fresh clone: compile once if dist/ is missing or older than any source file.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

const out = 'dist/src/main.js';
function newest(dir) {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}
if (!existsSync(out) || statSync(out).mtimeMs < newest('src')) {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  // As `npm run build`: the editor schema and the precompiled config validator (src/config/validator.ts).
  for (const gen of ['dist/scripts/gen-config-schema.js', 'dist/scripts/gen-config-validator.js'])
    execFileSync(process.execPath, [gen], { stdio: 'inherit' });
}
