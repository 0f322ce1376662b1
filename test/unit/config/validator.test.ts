import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parse } from 'yaml';
import { ConfigSchema } from '../../../src/config/schema.js';
import { GENERATED, loadValidator, newAjv, schemaHash, unloadValidator } from '../../../src/config/validator.js';

const require = createRequire(new URL('../../../src/config/validator.js', import.meta.url));
const fixture = (p: string) => readFileSync(new URL(`../../../../${p}`, import.meta.url), 'utf8');

test('the build generated the validator from the current schema, and start-up uses it', () => {
  const generated = require(GENERATED) as { schemaHash?: string };
  assert.equal(generated.schemaHash, schemaHash(), 'npm run build regenerates it with the schema');
  assert.equal(loadValidator(), generated);
  unloadValidator();
  assert.notEqual(loadValidator(), generated, 'unloaded: the next load is a fresh module');
});

test('generated and runtime-compiled validators agree: defaults filled, every error the same', () => {
  const compiled = newAjv().compile(ConfigSchema);
  const generated = loadValidator();
  for (const file of ['config/gateway.yaml', 'config/examples/jetson.yaml', 'test/fixtures/config/broken-many.yaml']) {
    // !env / !file tags parse as plain strings here; only the schema is compared.
    const a = parse(fixture(file), {
      customTags: [
        { tag: '!env', resolve: (s: string) => s },
        { tag: '!file', resolve: (s: string) => s },
      ],
    }) as unknown;
    const b = structuredClone(a);
    assert.equal(generated(a), compiled(b), file);
    assert.deepEqual(a, b, `${file}: same defaults filled in`);
    assert.deepEqual(
      (generated.errors ?? []).map((e) => `${e.instancePath} ${e.keyword} ${e.message}`),
      (compiled.errors ?? []).map((e) => `${e.instancePath} ${e.keyword} ${e.message}`),
      file,
    );
  }
});
