import type { Outbox, UplinkMessage } from './outbox.js';
import { PRIORITIES, type ClassStats, type OutboundMessage, type Priority } from './types.js';

/**
 * The outbox as the uplink and the queue views use it, keyed by `Priority` (class numbers are the
 * outbox's storage detail). `UplinkMessage` is a handle: the uplink reads its id, topic, payload
 * and content type, and hands it back to `ack`/`requeue`.
 */
export interface OutboxPort {
  /** Length of a message id (the uplink's cost estimate). */
  readonly idLength: number;
  /** Called after rows are committed (the uplink wakes its pump). */
  onCommit(fn: () => void): void;
  /** The next message of a class without taking it, `{ waitMs }` while its batch window is open, undefined when empty. */
  peek(p: Priority): UplinkMessage | { waitMs: number } | undefined;
  take(p: Priority): UplinkMessage | undefined;
  /** Commits the claims of these messages; `done` runs after the commit (the uplink publishes then). */
  claim(msgs: readonly UplinkMessage[], done: (err: Error | undefined) => void): void;
  ack(msg: UplinkMessage, wireBytes: number): void;
  requeue(msg: UplinkMessage): void;
  setMaxBatchBytes(bytes: number): void;
  classStats(): Record<Priority, ClassStats>;
}

/** The outbox as producers and the uplink see it (what the queue module provides). */
export interface OutboxAccess extends OutboxPort {
  /** A non-reading message; resolves after its commit, rejects when the commit fails. */
  enqueue(msg: OutboundMessage): Promise<void>;
}

const INDEX: Readonly<Record<Priority, number>> = { CRITICAL: 0, HIGH: 1, MEDIUM: 2, LOW: 3 };

/** The Priority-keyed view of an outbox (the outbox stores class numbers: 0 = CRITICAL). */
export function outboxPort(outbox: Outbox): OutboxAccess {
  return {
    enqueue: (msg) => outbox.enqueue(msg),
    get idLength() {
      return outbox.idLength;
    },
    onCommit: (fn) => outbox.onCommit(fn),
    peek: (p) => outbox.peek(INDEX[p]),
    take: (p) => outbox.take(INDEX[p]),
    claim: (msgs, done) => outbox.claim(msgs, done),
    ack: (msg, wireBytes) => outbox.ack(msg, wireBytes),
    requeue: (msg) => outbox.requeue(msg),
    setMaxBatchBytes: (bytes) => outbox.setMaxBatchBytes(bytes),
    classStats: () => {
      const stats = outbox.classStats();
      const out = {} as Record<Priority, ClassStats>;
      PRIORITIES.forEach((p, i) => (out[p] = stats[i]!));
      return out;
    },
  };
}
