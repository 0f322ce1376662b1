// The checkpointer's thread (see checkpoint.ts): its own connection to the database file, a passive
// checkpoint whenever the WAL passed the threshold. Nothing here touches data.
import { statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { path, everyMs, walBytes } = workerData as { path: string; everyMs: number; walBytes: number };
const db = new Database(path, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
// This connection never checkpoints on its own commits (it makes none).
db.pragma('wal_autocheckpoint = 0');

let busy = false;
const timer = setInterval(() => {
  if (busy) return;
  let size = 0;
  try {
    size = statSync(`${path}-wal`).size;
  } catch {
    return; // no WAL yet
  }
  if (size < walBytes) return;
  busy = true;
  try {
    // PASSIVE (https://sqlite.org/c3ref/wal_checkpoint_v2.html): copies what it can without waiting
    // for or blocking the writer; the writer restarts the WAL from its start once all is copied.
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    parentPort?.postMessage({ log: r?.log ?? 0, checkpointed: r?.checkpointed ?? 0 });
  } catch (err) {
    parentPort?.postMessage({ error: (err as Error).message });
  } finally {
    busy = false;
  }
}, everyMs);

parentPort?.on('message', (m: unknown) => {
  if (m === 'stop') {
    clearInterval(timer);
    db.close();
    parentPort?.close();
  }
});
