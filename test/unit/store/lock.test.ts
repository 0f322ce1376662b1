import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayError } from '../../../src/errors.js';
import { lockDataDir, PID_FILE } from '../../../src/store/lock.js';

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'egw-lock-'));
}

test('a held data directory refuses a second lock, naming the directory and the holder PID', () => {
  const d = dir();
  try {
    const held = lockDataDir(d);
    assert.equal(readFileSync(join(d, PID_FILE), 'utf8'), `${process.pid}\n`);
    assert.throws(
      () => lockDataDir(d),
      (err: unknown) =>
        err instanceof GatewayError &&
        err.code === 'EGW_DATA_DIR_LOCKED' &&
        err.message.includes(`data directory ${d} is in use by another edge-gateway (PID ${process.pid})`),
    );
    held.release();
    held.release(); // idempotent
    assert.equal(existsSync(join(d, PID_FILE)), false);
    lockDataDir(d).release();
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('a hostile or garbled PID file never breaks the lock or the message', () => {
  for (const content of ['', 'abc', '-5', '1e9999', '12 34', '9'.repeat(5000), '\u0000\u0001', '0']) {
    const d = dir();
    try {
      writeFileSync(join(d, PID_FILE), content);
      const held = lockDataDir(d); // a stale PID file from a dead holder is ignored
      writeFileSync(join(d, PID_FILE), content); // ...and one rewritten by someone else is only reported
      assert.throws(
        () => lockDataDir(d),
        (err: unknown) => err instanceof GatewayError && /\(PID (unknown|\d+)\)/.test(err.message),
        JSON.stringify(content.slice(0, 20)),
      );
      held.release();
      // The holder removes only its own PID file.
      assert.equal(existsSync(join(d, PID_FILE)), true);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }
});

test('a data directory that does not exist yet is created', () => {
  const d = dir();
  try {
    const held = lockDataDir(join(d, 'a/b'));
    assert.ok(existsSync(join(d, 'a/b/gateway.lock')));
    held.release();
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
