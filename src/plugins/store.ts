import type { Db } from '../store/db.js';
import { GatewayError } from '../errors.js';

const MAX_VALUE_BYTES = 64 * 1024;
const MAX_KEY_LENGTH = 200;
const MAX_KEYS = 10_000;

/**
 * The plugins' tables in the one SQLite file: a key-value store namespaced by plugin name, and
 * the quarantine list (persisted so a quarantined plugin stays off across restarts until released).
 */
export class PluginStore {
  private readonly st;

  constructor(db: Db) {
    db.exec(`CREATE TABLE IF NOT EXISTS plugin_kv (
      plugin TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (plugin, key)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS plugin_quarantine (
      plugin TEXT PRIMARY KEY, reason TEXT NOT NULL, at INTEGER NOT NULL
    );`);
    this.st = {
      get: db.prepare<[string, string], { value: string }>('SELECT value FROM plugin_kv WHERE plugin = ? AND key = ?'),
      set: db.prepare('INSERT OR REPLACE INTO plugin_kv (plugin, key, value) VALUES (?, ?, ?)'),
      del: db.prepare('DELETE FROM plugin_kv WHERE plugin = ? AND key = ?'),
      keys: db.prepare<[string], { key: string }>(
        'SELECT key FROM plugin_kv WHERE plugin = ? ORDER BY key LIMIT 10000',
      ),
      count: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM plugin_kv WHERE plugin = ?'),
      quarantined: db.prepare<[string], { reason: string; at: number }>(
        'SELECT reason, at FROM plugin_quarantine WHERE plugin = ?',
      ),
      quarantine: db.prepare('INSERT OR REPLACE INTO plugin_quarantine (plugin, reason, at) VALUES (?, ?, ?)'),
      release: db.prepare('DELETE FROM plugin_quarantine WHERE plugin = ?'),
    };
  }

  get(plugin: string, key: string): unknown {
    const row = this.st.get.get(plugin, checkKey(key));
    return row ? (JSON.parse(row.value) as unknown) : undefined;
  }

  set(plugin: string, key: string, value: unknown): void {
    const text = JSON.stringify(value);
    if (text === undefined) throw new GatewayError('EGW_PLUGIN_KV', 'kv value is not JSON-serialisable');
    if (Buffer.byteLength(text) > MAX_VALUE_BYTES)
      throw new GatewayError('EGW_PLUGIN_KV', `kv value above ${MAX_VALUE_BYTES} bytes`);
    checkKey(key);
    if (this.st.get.get(plugin, key) === undefined && this.st.count.get(plugin)!.n >= MAX_KEYS)
      throw new GatewayError('EGW_PLUGIN_KV', `kv store of plugin ${plugin} holds ${MAX_KEYS} keys already`);
    this.st.set.run(plugin, key, text);
  }

  delete(plugin: string, key: string): void {
    this.st.del.run(plugin, checkKey(key));
  }

  keys(plugin: string): string[] {
    return this.st.keys.all(plugin).map((r) => r.key);
  }

  quarantined(plugin: string): { reason: string; at: number } | undefined {
    return this.st.quarantined.get(plugin);
  }

  quarantine(plugin: string, reason: string): void {
    this.st.quarantine.run(plugin, reason.slice(0, 500), Date.now());
  }

  release(plugin: string): boolean {
    return this.st.release.run(plugin).changes > 0;
  }
}

function checkKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH)
    throw new GatewayError('EGW_PLUGIN_KV', `kv key must be a string of 1..${MAX_KEY_LENGTH} characters`);
  return key;
}
