import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../..', import.meta.url));

test('the example plugins type-check against edge-gateway/plugin (what an editor gives a plugin author)', async () => {
  const r = await new Promise<{ code: number; out: string }>((resolve) =>
    execFile(
      process.execPath,
      [`${ROOT}/node_modules/typescript/bin/tsc`, '-p', `${ROOT}/plugins/tsconfig.json`],
      { timeout: 120000 },
      (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr }),
    ),
  );
  assert.equal(r.code, 0, r.out);
});
