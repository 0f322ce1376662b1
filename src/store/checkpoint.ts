import { statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log/logger.js';
import type { Db } from './db.js';

export interface CheckpointerOptions {
  db: Db;
  log: Logger;
  /** WAL size that triggers a checkpoint (bytes). */
  walBytes?: number;
  /** How often the WAL size is looked at (ms). */
  everyMs?: number;
}

/** While the checkpointer runs, the writer's own auto-checkpoint is only a safety net at this many pages. */
const SAFETY_AUTOCHECKPOINT_PAGES = 32768;

/**
 * WAL checkpoints off the event loop. SQLite's auto-checkpoint runs inside the commit that crosses
 * the threshold: it copies the WAL's pages back into the database and fsyncs it, on the main
 * thread, and every PUBACK waiting for that commit waits for the disk too. This worker thread
 * checkpoints from its own connection instead (PASSIVE: it never blocks the writer), so commits
 * only append to the WAL. If it falls behind or dies, the writer's auto-checkpoint at 32 MiB of
 * WAL still bounds the file. Durability is unchanged: a checkpoint only copies committed pages.
 */
export class Checkpointer {
  private worker: Worker | undefined;
  private readonly previous: number;
  private wanted = false;
  checkpoints = 0;

  constructor(private readonly opts: CheckpointerOptions) {
    this.previous = opts.db.pragma('wal_autocheckpoint', { simple: true }) as number;
  }

  /** Arms the checkpointer: the worker itself starts on the first `poll` that finds the WAL growing. */
  start(): void {
    this.wanted = true;
  }

  /**
   * Called now and then (once a second): starts the worker once the WAL reached a quarter of the
   * threshold. A quiet gateway never pays for the worker's isolate (~8 MB RSS); one that writes does.
   */
  poll(): void {
    if (!this.wanted || this.worker || this.opts.db.memory) return;
    let size = 0;
    try {
      size = statSync(`${this.opts.db.name}-wal`).size;
    } catch {
      return;
    }
    if (size >= (this.opts.walBytes ?? 4 * 1024 * 1024) / 4) this.spawn();
  }

  private spawn(): void {
    const { db, log } = this.opts;
    const walBytes = this.opts.walBytes ?? 4 * 1024 * 1024;
    this.worker = new Worker(new URL('./checkpoint-worker.js', import.meta.url), {
      workerData: { path: db.name, everyMs: this.opts.everyMs ?? 1000, walBytes },
      // A small isolate: it only runs one pragma now and then.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
    });
    this.worker.unref();
    this.worker.on('message', (m: { error?: string }) => {
      if (m.error) log.warn({ err: m.error }, 'WAL checkpoint failed; the writer checkpoints itself at 32 MiB');
      else this.checkpoints++;
    });
    this.worker.on('error', (err) => {
      log.warn({ err }, 'WAL checkpointer stopped; the writer checkpoints itself');
      db.pragma(`wal_autocheckpoint = ${this.previous}`);
      this.worker = undefined;
    });
    db.pragma(`wal_autocheckpoint = ${SAFETY_AUTOCHECKPOINT_PAGES}`);
  }

  async stop(): Promise<void> {
    this.wanted = false;
    const w = this.worker;
    this.worker = undefined;
    if (!w) return;
    if (this.opts.db.open) this.opts.db.pragma(`wal_autocheckpoint = ${this.previous}`);
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage('stop');
    const t = setTimeout(() => void w.terminate(), 2000);
    await exited;
    clearTimeout(t);
  }
}
