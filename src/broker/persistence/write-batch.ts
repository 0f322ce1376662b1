import type { Db } from '../../store/db.js';

/**
 * Group commit for the persistence's writes (DESIGN: "many messages per SQLite transaction").
 *
 * Writes are queued as closures over prepared statements and committed together in ONE
 * transaction on the next `setImmediate`, so every write issued while aedes handles one burst of
 * packets shares a commit. Every caller of a batch awaits the same promise, which settles only
 * after COMMIT returned: aedes acknowledges (PUBACK/SUBACK) after the data is on disk.
 *
 * The shared connection never holds a transaction open across ticks (other modules use it too):
 * the transaction is opened, filled and committed synchronously inside `flush()`.
 * Reads that need rows a pending write touches call `flush()` first (a no-op when nothing waits).
 */
export class WriteBatch {
  private ops: Array<() => void> = [];
  private promise: Promise<void> | undefined;
  private resolve: (() => void) | undefined;
  private reject: ((err: unknown) => void) | undefined;
  private scheduled: NodeJS.Immediate | undefined;
  private readonly runAll: () => void;
  /** Committed batches and operations, for stats(). */
  commits = 0;
  committedOps = 0;
  failedCommits = 0;

  constructor(
    db: Db,
    /** Bound of the queue: reaching it commits at once instead of waiting for the tick. */
    private readonly maxOps: number,
    /** Called after a failed commit (the transaction rolled back) to resynchronise memory. */
    private readonly onFailure: (err: unknown) => void,
  ) {
    const ops = (): void => {
      for (const op of this.ops) op();
    };
    this.runAll = db.transaction(ops);
  }

  /** Queues a write; returns the promise of the batch it joined. */
  add(op: () => void): Promise<void> {
    this.ops.push(op);
    return this.current();
  }

  /**
   * Queues a write without taking the batch's promise: for methods that queue several writes
   * and then return `current()` once (so no promise of theirs is left without a handler).
   */
  queue(op: () => void): void {
    this.ops.push(op);
  }

  /** The promise of the pending batch (resolved at once when nothing is pending). */
  current(): Promise<void> {
    if (this.promise === undefined) {
      if (this.ops.length === 0) return Promise.resolve();
      this.promise = new Promise<void>((res, rej) => {
        this.resolve = res;
        this.reject = rej;
      });
      this.scheduled = setImmediate(() => this.flush());
    }
    const p = this.promise;
    if (this.ops.length >= this.maxOps) this.flush();
    return p;
  }

  get pending(): number {
    return this.ops.length;
  }

  /** Commits everything queued, synchronously. */
  flush(): void {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.ops.length === 0) return;
    const resolve = this.resolve;
    const reject = this.reject;
    const n = this.ops.length;
    this.promise = this.resolve = this.reject = undefined;
    try {
      this.runAll();
      this.ops = [];
      this.commits++;
      this.committedOps += n;
      resolve?.();
    } catch (err) {
      this.ops = [];
      this.failedCommits++;
      try {
        this.onFailure(err);
      } finally {
        reject?.(err);
      }
    }
  }
}
