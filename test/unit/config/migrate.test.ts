import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrateConfigFile, migrateConfigText } from '../../../src/config/migrate.js';
import { parseConfig } from '../../../src/config/load.js';
import { CONFIG_VERSION } from '../../../src/config/schema.js';

const V0 = `# my site config
gateway:
  id: site-7 # the line's gateway
metrics:
  port: 9999
`;

test('a version-0 config (no version key) migrates to the current version, keeping comments', () => {
  const r = migrateConfigText(V0);
  assert.ok(r);
  assert.equal(r.from, 0);
  assert.equal(r.to, CONFIG_VERSION);
  assert.match(r.text, /# my site config/);
  assert.match(r.text, /# the line's gateway/);
  const c = parseConfig(r.text);
  assert.equal(c.version, CONFIG_VERSION);
  assert.equal(c.gateway.id, 'site-7');
  assert.equal(c.metrics.port, 9999);
});

test('current, newer and unparsable configs are left alone for the validator to judge', () => {
  assert.equal(migrateConfigText(`version: ${CONFIG_VERSION}\n`), undefined);
  assert.equal(migrateConfigText('version: 99\n'), undefined);
  assert.equal(migrateConfigText('version: "one"\n'), undefined);
  assert.equal(migrateConfigText('a: [\n'), undefined);
  assert.equal(migrateConfigText('- just\n- a list\n'), undefined);
});

test('migrating a file keeps a backup of the original and writes the new text atomically', () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-mig-'));
  try {
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, V0);
    const r = migrateConfigFile(file);
    assert.ok(r);
    assert.equal(readFileSync(`${file}.v0.bak`, 'utf8'), V0);
    assert.equal(readFileSync(file, 'utf8'), r.text);
    assert.equal(existsSync(`${file}.tmp-${process.pid}`), false);
    assert.equal(migrateConfigFile(file), undefined, 'a second run has nothing to do');
    assert.equal(migrateConfigFile(join(dir, 'missing.yaml')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
