import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../../src/errors.js';

test('every error code is documented in docs/errors.md and every documented code exists', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(EGW_[A-Z0-9_]+)`\s*\|/gm)].map((m) => m[1]!));
  const declared = new Set(Object.keys(ERROR_CODES));
  for (const code of declared) assert.ok(documented.has(code), `${code} is not documented in docs/errors.md`);
  for (const code of documented)
    assert.ok(declared.has(code), `${code} is documented but not declared in src/errors.ts`);
});

test('every EGW_ code written in src/ is in the catalogue, and every catalogued code is used', () => {
  const src = fileURLToPath(new URL('../../../src', import.meta.url));
  const used = new Set<string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts') && p !== join(src, 'errors.ts'))
        for (const m of readFileSync(p, 'utf8').matchAll(/\bEGW_[A-Z0-9_]*[A-Z0-9]\b/g)) used.add(m[0]);
    }
  };
  walk(src);
  const declared = new Set(Object.keys(ERROR_CODES));
  // A template prefix such as `EGW_INGEST_${string}` names a family, not a code.
  const prefixes = ['EGW_INGEST'];
  for (const code of used)
    if (!prefixes.includes(code)) assert.ok(declared.has(code), `${code} is used in src/ but not in the catalogue`);
  for (const code of declared) assert.ok(used.has(code), `${code} is catalogued but nothing in src/ raises it`);
});
