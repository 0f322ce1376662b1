import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayError } from '../../../src/errors.js';
import { migrate, openDatabase, type MigrationStep } from '../../../src/store/db.js';

// Data across releases (docs/ota.md §Data across releases), on real SQLite files: a release that
// rolled back must open the data dir its successor migrated when the successor's steps are additive,
// and refuses — before writing anything — when a step is marked `breaks`.

const V1 = 'CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)';
const ADDITIVE = 'ALTER TABLE things ADD COLUMN colour TEXT NOT NULL DEFAULT "none"; CREATE TABLE extras (k TEXT)';
const BREAKING: MigrationStep = {
  sql: 'CREATE TABLE things2 (id INTEGER PRIMARY KEY, label TEXT); INSERT INTO things2 SELECT id, name FROM things; DELETE FROM things',
  breaks: true,
};

function file(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'egw-dbcompat-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'state.db');
}

function open(path: string) {
  return openDatabase({ path, durability: 'normal' });
}

test('an additive step of a newer release: the older release opens the file, reads and writes it', (t) => {
  const path = file(t);
  const old1 = open(path);
  migrate(old1, 'things', [V1]);
  old1.prepare('INSERT INTO things (name) VALUES (?)').run('before the update');
  old1.close();

  const newer = open(path);
  migrate(newer, 'things', [V1, ADDITIVE]);
  newer.prepare('INSERT INTO things (name, colour) VALUES (?, ?)').run('during the trial', 'red');
  newer.close();

  const old2 = open(path); // rolled back
  assert.doesNotThrow(() => migrate(old2, 'things', [V1]));
  assert.deepEqual(
    old2.prepare('SELECT name FROM things ORDER BY id').all(),
    [{ name: 'before the update' }, { name: 'during the trial' }],
    'rows written by the newer release are read',
  );
  old2.prepare('INSERT INTO things (name) VALUES (?)').run('after the rollback');
  assert.deepEqual(
    old2.prepare('SELECT version, breaks FROM schema_migrations WHERE module = ? ORDER BY version').all('things'),
    [
      { version: 1, breaks: 0 },
      { version: 2, breaks: 0 },
    ],
    'the newer step stays recorded (not re-run when the newer release comes back)',
  );
  old2.close();
  const again = open(path); // the newer release again: nothing to do, the default fills the old row
  migrate(again, 'things', [V1, ADDITIVE]);
  assert.equal(
    (again.prepare("SELECT colour FROM things WHERE name = 'after the rollback'").get() as { colour: string }).colour,
    'none',
  );
  again.close();
});

test('a step marked breaks: the older release refuses with EGW_STORE_NEWER and writes nothing', (t) => {
  const path = file(t);
  const a = open(path);
  migrate(a, 'things', [V1]);
  a.prepare('INSERT INTO things (name) VALUES (?)').run('x');
  a.close();
  const b = open(path);
  migrate(b, 'things', [V1, BREAKING]);
  b.close();
  const before = new Database(path, { readonly: true });
  const snapshot = JSON.stringify([
    before.prepare('SELECT * FROM schema_migrations ORDER BY module, version').all(),
    before.prepare('SELECT * FROM things2').all(),
  ]);
  before.close();

  const old = open(path);
  assert.throws(
    () => migrate(old, 'things', [V1]),
    (err: unknown) => err instanceof GatewayError && err.code === 'EGW_STORE_NEWER' && /things#2/.test(err.message),
  );
  old.close();
  const after = new Database(path, { readonly: true });
  assert.equal(
    JSON.stringify([
      after.prepare('SELECT * FROM schema_migrations ORDER BY module, version').all(),
      after.prepare('SELECT * FROM things2').all(),
    ]),
    snapshot,
  );
  after.close();
  // The newer release itself still opens it.
  const newer = open(path);
  assert.doesNotThrow(() => migrate(newer, 'things', [V1, BREAKING]));
  newer.close();
});

test('a file from before the breaks column: the column is added with its default; old-style inserts still work', (t) => {
  const path = file(t);
  const raw = new Database(path);
  raw.exec(`CREATE TABLE schema_migrations (module TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL,
    PRIMARY KEY (module, version)); ${V1}`);
  raw.prepare('INSERT INTO schema_migrations (module, version, applied_at) VALUES (?, ?, ?)').run('things', 1, 1);
  raw.close();
  const db = open(path);
  migrate(db, 'things', [V1, ADDITIVE]);
  // What a release that predates the column does: names its three columns.
  db.prepare('INSERT INTO schema_migrations (module, version, applied_at) VALUES (?, ?, ?)').run('other', 1, 2);
  assert.deepEqual(db.prepare('SELECT module, version, breaks FROM schema_migrations ORDER BY module, version').all(), [
    { module: 'other', version: 1, breaks: 0 },
    { module: 'things', version: 1, breaks: 0 },
    { module: 'things', version: 2, breaks: 0 },
  ]);
  db.close();
});
