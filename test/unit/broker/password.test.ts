import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashPassword, parsePasswordHash, verifyPassword } from '../../../src/broker/password.js';
import { PASSWORD_HASH_PATTERN } from '../../../src/broker/config.js';

const FAST = { N: 1024, r: 8, p: 1 };

test('hashPassword produces the documented scrypt$N$r$p$salt$hash form that verifies', async () => {
  const h = await hashPassword('s3cret', FAST);
  assert.match(h, new RegExp(PASSWORD_HASH_PATTERN));
  const parsed = parsePasswordHash(h)!;
  assert.equal(parsed.N, 1024);
  assert.ok(await verifyPassword('s3cret', parsed));
  assert.ok(await verifyPassword(Buffer.from('s3cret'), parsed));
  assert.ok(!(await verifyPassword('s3creT', parsed)));
  assert.ok(!(await verifyPassword('', parsed)));
});

test('the same password hashes differently each time (salted)', async () => {
  assert.notEqual(await hashPassword('x', FAST), await hashPassword('x', FAST));
});

test('parsePasswordHash refuses malformed or dangerous parameters', () => {
  const salt = Buffer.alloc(16, 1).toString('base64');
  const hash = Buffer.alloc(32, 2).toString('base64');
  assert.ok(parsePasswordHash(`scrypt$16384$8$1$${salt}$${hash}`));
  assert.equal(parsePasswordHash(`scrypt$1000$8$1$${salt}$${hash}`), null, 'N not a power of two');
  assert.equal(parsePasswordHash(`scrypt$${2 ** 24}$8$1$${salt}$${hash}`), null, 'N too large');
  assert.equal(parsePasswordHash(`bcrypt$16384$8$1$${salt}$${hash}`), null);
  assert.equal(parsePasswordHash(`scrypt$16384$8$1$${salt}`), null);
  assert.equal(parsePasswordHash(`scrypt$16384$8$1$AA==$${hash}`), null, 'salt too short');
});
