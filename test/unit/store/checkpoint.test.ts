import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Checkpointer } from '../../../src/store/checkpoint.js';
import { openDatabase } from '../../../src/store/db.js';

test('checkpointer: checkpoints the WAL from its own thread; the writer auto-checkpoints only as a safety net meanwhile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-ckpt-'));
  const db = openDatabase({ path: join(dir, 'gateway.db'), durability: 'normal' });
  t.after(() => {
    if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const before = db.pragma('wal_autocheckpoint', { simple: true }) as number;
  const ck = new Checkpointer({ db, log: pino({ level: 'silent' }), walBytes: 64 * 1024, everyMs: 20 });
  ck.start();
  ck.poll();
  assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), before, 'no worker while the WAL is small');
  db.exec('CREATE TABLE t (x BLOB)');
  const ins = db.prepare('INSERT INTO t VALUES (?)');
  for (let i = 0; i < 200; i++) ins.run(Buffer.alloc(1000, i)); // 200 commits: WAL > 64 KiB
  assert.ok(statSync(join(dir, 'gateway.db-wal')).size > 64 * 1024);
  ck.poll(); // the WAL grew: the worker starts
  assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 32768);
  const deadline = performance.now() + 5000;
  while (ck.checkpoints === 0) {
    assert.ok(performance.now() < deadline, 'a checkpoint within 5 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  // What the worker copied is in the database file: the WAL restarts from its beginning.
  for (let i = 0; i < 5; i++) ins.run(Buffer.alloc(10));
  const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[];
  assert.ok(r!.log < 200, `WAL restarted (${r!.log} frames)`);
  await ck.stop();
  assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), before);
  assert.equal((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 205);
});
