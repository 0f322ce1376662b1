import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../../src/errors.js';

test('every error code is documented in docs/errors.md and every documented code exists', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(EGW_[A-Z0-9_]+)`\s*\|/gm)].map((m) => m[1]!));
  const declared = new Set(Object.keys(ERROR_CODES));
  for (const code of declared) assert.ok(documented.has(code), `${code} is not documented in docs/errors.md`);
  for (const code of documented)
    assert.ok(declared.has(code), `${code} is documented but not declared in src/errors.ts`);
});
