import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Db } from '../../../src/store/db.js';

/** A temp dir of real SQLite files for persistence tests; `cleanup()` closes and removes them. */
export class TempDbs {
  readonly dir = mkdtempSync(join(tmpdir(), 'egw-persist-'));
  private readonly open: Db[] = [];
  private n = 0;

  path(name = `db-${++this.n}.sqlite`): string {
    return join(this.dir, name);
  }

  openDb(path = this.path()): Db {
    const db = openDatabase({ path, durability: 'normal' });
    this.open.push(db);
    return db;
  }

  cleanup(): void {
    for (const db of this.open) if (db.open) db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
