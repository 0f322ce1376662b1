import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/gateway-process.js';

const INSTALL = new URL('../../../scripts/install.sh', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

test('install.sh stages a runnable release, points current at it and never overwrites the site config', () => {
  const tmp = tempDir('egw-install-');
  try {
    const run = () =>
      spawnSync('bash', [INSTALL, '--root', tmp.dir, '--no-start'], { encoding: 'utf8', timeout: 120000 });
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    const opt = join(tmp.dir, 'opt/edge-gateway');
    assert.equal(readlinkSync(join(opt, 'current')), `releases/${pkg.version}`);
    const main = join(opt, 'current/dist/src/main.js');
    const v = spawnSync(process.execPath, [main, '--version'], { encoding: 'utf8' });
    assert.equal(v.stdout.trim(), pkg.version);
    assert.ok(!existsSync(join(opt, 'current/node_modules/typescript')), 'dev dependencies are pruned');
    assert.ok(existsSync(join(tmp.dir, 'etc/systemd/system/edge-gateway.service')));
    assert.equal(
      readlinkSync(join(tmp.dir, 'usr/local/bin/edge-gateway')),
      '/opt/edge-gateway/current/dist/src/main.js',
    );
    assert.ok(statSync(main).mode & 0o100, 'the CLI is executable');
    for (const t of ['read-token', 'admin-token']) {
      const st = statSync(join(tmp.dir, 'etc/edge-gateway', t));
      assert.equal(st.mode & 0o077, 0o040, `${t} is not readable by others`);
      assert.ok(readFileSync(join(tmp.dir, 'etc/edge-gateway', t), 'utf8').trim().length >= 32);
    }
    const cfg = join(tmp.dir, 'etc/edge-gateway/gateway.yaml');
    writeFileSync(cfg, '# edited on site\nversion: 1\n');
    const second = run();
    assert.equal(second.status, 0, second.stderr);
    assert.equal(readFileSync(cfg, 'utf8'), '# edited on site\nversion: 1\n', 'the site config survives a reinstall');
  } finally {
    tmp.cleanup();
  }
});
