import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MAIN, isolatedConfig, tempDir } from '../helpers/gateway-process.js';

function cli(...args: string[]) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 20000 });
}

// The schema accepts any `x-<name>` (a plugin type), but no module registers `x-foo` in this build:
// it could never start, so check-config says so (with its line) and the gateway refuses to start.
test('check-config and the start refuse a driver type no module registers, with its line', () => {
  const tmp = tempDir();
  try {
    const dataDir = join(tmp.dir, 'data');
    const drivers = ['drivers:', '  - type: simulated', '    id: sim-1', '  - type: x-foo', '    id: foo-1'].join('\n');
    const cfg = tmp.file('gw.yaml', isolatedConfig(dataDir, drivers));
    const line = isolatedConfig(dataDir, drivers).split('\n').indexOf('  - type: x-foo') + 1;
    const check = cli('check-config', cfg);
    assert.equal(check.status, 1);
    assert.match(check.stderr, /Refusing to start because configuration .* is not valid \(1 error\)/);
    assert.match(
      check.stderr,
      new RegExp(
        `drivers\\[1\\]\\.type: driver type "x-foo" is not registered .*known: .*simulated.* \\(line ${line}\\)`,
      ),
    );
    const run = cli('--config', cfg);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /drivers\[1\]\.type: driver type "x-foo" is not registered/);
    assert.equal(existsSync(dataDir), false, 'nothing opened');
    // Disabled, it is kept and never started: valid.
    const off = tmp.file('off.yaml', isolatedConfig(dataDir, `${drivers}\n    enabled: false`));
    assert.equal(cli('check-config', off).status, 0);
  } finally {
    tmp.cleanup();
  }
});
