import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../../src/store/db.js';
import { PluginStore } from '../../../src/plugins/store.js';

test('plugin kv: namespaced, bounded, hostile keys and values refused; quarantine persists in the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-plkv-'));
  try {
    const path = join(dir, 'gateway.db');
    let db = openDatabase({ path, durability: 'normal' });
    let s = new PluginStore(db);
    s.set('a', 'k', { n: 1 });
    s.set('b', 'k', 'other');
    assert.deepEqual(s.get('a', 'k'), { n: 1 });
    assert.equal(s.get('b', 'k'), 'other');
    assert.deepEqual(s.keys('a'), ['k']);
    const refused = (f: () => void) => assert.throws(f, (e: { code?: string }) => e.code === 'EGW_PLUGIN_KV');
    refused(() => s.set('a', '', 1));
    refused(() => s.set('a', 'x'.repeat(201), 1));
    refused(() => s.set('a', 'big', 'x'.repeat(64 * 1024 + 1)));
    refused(() => s.set('a', 'fn', () => 1));
    refused(() => s.get('a', 42 as unknown as string));
    s.delete('a', 'k');
    assert.equal(s.get('a', 'k'), undefined);
    s.quarantine('a', 'too many failures');
    db.close();
    db = openDatabase({ path, durability: 'normal' });
    s = new PluginStore(db);
    assert.equal(s.quarantined('a')?.reason, 'too many failures');
    assert.equal(s.get('b', 'k'), 'other');
    assert.ok(s.release('a'));
    assert.equal(s.quarantined('a'), undefined);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
