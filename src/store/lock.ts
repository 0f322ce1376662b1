import Database from 'better-sqlite3';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayError } from '../errors.js';

/** A held data-directory lock; `release` is idempotent. */
export interface DataDirLock {
  readonly dir: string;
  release(): void;
}

export const LOCK_FILE = 'gateway.lock';
export const PID_FILE = 'gateway.pid';

/**
 * Makes this process the only gateway on `dir`: two instances on one data directory would share
 * one outbox and one broker store, and each would acknowledge what the other may lose.
 *
 * Node has no flock(2), so the lock is SQLite's: `gateway.lock` is an otherwise unused database
 * held with `locking_mode=EXCLUSIVE` after an exclusive transaction — a POSIX fcntl() write lock
 * the kernel drops when the process dies (kill -9, OOM killer) and that does not exist after a
 * power cut. So a stale lock cannot block a restart, and no PID liveness or boot-id guess is
 * needed (https://www.sqlite.org/pragma.html#pragma_locking_mode, https://www.sqlite.org/lockingv3.html).
 * `gateway.pid` only tells a refused second instance whom to blame; it is never trusted for locking.
 *
 * Throws EGW_DATA_DIR_LOCKED (naming the directory and the holder's PID) when another process holds it.
 */
export function lockDataDir(dir: string, pid = process.pid): DataDirLock {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  let db: Database.Database;
  try {
    db = acquire(file);
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      const holder = waitForHolder(dir);
      throw new GatewayError(
        'EGW_DATA_DIR_LOCKED',
        `data directory ${dir} is in use by another edge-gateway (PID ${holder ?? 'unknown'}); ` +
          'stop that instance first, or give this one its own gateway.data_dir',
        { cause: err },
      );
    }
    // Anything else (a lock file that is not a database, say after a torn write) is ours to
    // replace: no live process holds it, or the open would have been SQLITE_BUSY.
    try {
      rmSync(file, { force: true });
      rmSync(`${file}-journal`, { force: true });
      db = acquire(file);
    } catch (again) {
      throw new GatewayError('EGW_STORE_OPEN', `cannot lock data directory ${dir}: ${(again as Error).message}`, {
        cause: again,
      });
    }
  }
  const pidFile = join(dir, PID_FILE);
  const tmp = `${pidFile}.tmp-${pid}`;
  writeFileSync(tmp, `${pid}\n`);
  renameSync(tmp, pidFile);
  let held = true;
  return {
    dir,
    release() {
      if (!held) return;
      held = false;
      // Remove our PID first: once the lock is released another instance may write its own.
      if (readHolder(dir) === pid) rmSync(pidFile, { force: true });
      db.close();
    },
  };
}

function acquire(file: string): Database.Database {
  // timeout 0: a held lock must refuse at once, not after better-sqlite3's default 5 s busy wait.
  const db = new Database(file, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // An exclusive transaction takes the EXCLUSIVE lock; in EXCLUSIVE locking mode SQLite never
    // gives it back until the connection closes (or the process dies).
    db.exec('BEGIN EXCLUSIVE');
    db.exec('COMMIT');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * The holder writes its PID just after taking the lock: a PID file left by a dead process may
 * still be there for a moment, so wait (bounded, 500 ms) for one that names a live process.
 */
function waitForHolder(dir: string): number | undefined {
  let pid = readHolder(dir);
  const gate = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 10 && (pid === undefined || !alive(pid)); i++) {
    Atomics.wait(gate, 0, 0, 50); // a synchronous sleep: this runs once, before anything starts
    pid = readHolder(dir);
  }
  return pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The PID recorded by the holder, if it has written one yet. */
export function readHolder(dir: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(join(dir, PID_FILE), 'utf8').trim(), 10);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
