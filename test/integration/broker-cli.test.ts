import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { PASSWORD_HASH_PATTERN } from '../../src/broker/config.js';
import { parsePasswordHash, verifyPassword } from '../../src/broker/password.js';
import { MAIN } from '../helpers/gateway-process.js';

test('edge-gateway hash-password prints a scrypt hash of the password read from stdin', async () => {
  const r = spawnSync(process.execPath, [MAIN, 'hash-password'], {
    input: 'correct horse\n',
    encoding: 'utf8',
    timeout: 20000,
  });
  assert.equal(r.status, 0, r.stderr);
  const hash = r.stdout.trim();
  assert.match(hash, new RegExp(PASSWORD_HASH_PATTERN));
  assert.ok(await verifyPassword('correct horse', parsePasswordHash(hash)!));
  const empty = spawnSync(process.execPath, [MAIN, 'hash-password'], { input: '', encoding: 'utf8', timeout: 20000 });
  assert.equal(empty.status, 2);
});
